"""OpenTelemetry spans and metrics of calls and scans, BETATEL_LOG, and the Prometheus recipe.

The global tracer and meter providers can be set once per process: this
module sets them once (the in-memory exporter and reader below) and each
test starts from empty ones. Tests of what happens without the package, or
of BETATEL_LOG (read once per process), run in a fresh interpreter.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import anyio
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

import betatel_async as bt
from betatel_async.sandbox import FaultConfig, Sandbox, SandboxConfig, serve

from ._docs import python_block
from ._leaks import leaks

pytestmark = pytest.mark.anyio

KEY = "sk-Qz7rK2pVw9xLm4Hn8TbY"
FAST = bt.RetryPolicy(backoff_base=0.001, backoff_max=0.001)

_EXPORTER = InMemorySpanExporter()
# Delta: each read holds what was recorded since the last one, so a test sees its own calls only.
_READER = InMemoryMetricReader(
    preferred_temporality={Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
)
_PROVIDERS: list[TracerProvider] = []


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans this test ends (the global providers are set on first use, once per process)."""
    if not _PROVIDERS:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
        _PROVIDERS.append(provider)
    _EXPORTER.clear()
    _READER.get_metrics_data()  # drop what earlier tests recorded
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxConfig(sims=250, seed=3, api_key=KEY)) as sb:
        yield sb


def client(sandbox: Sandbox, **options: Any) -> bt.BetatelClient:
    return bt.BetatelClient(
        api_key=KEY,
        user_id=sandbox.user_id,
        base_url=sandbox.url,
        retry=options.pop("retry", FAST),
        **options,
    )


def points(name: str) -> list[Any]:
    """The data points of metric ``name`` recorded since the last read."""
    data = _READER.get_metrics_data()
    found: list[Any] = []
    for resource in data.resource_metrics if data is not None else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += metric.data.data_points
    return found


def one(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


async def test_a_call_is_one_client_span_named_by_its_path_template(
    sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    package_id = sandbox.data.packages_list()[0]["id"]
    async with client(sandbox) as c:
        await c.packages.get(package_id)
    span = one(spans)
    assert span.name == "GET /api/v1/esim/packages/{id}"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.template": "/api/v1/esim/packages/{id}",
        "server.address": "127.0.0.1",
        "server.port": URL(sandbox.url).port,
        "http.response.status_code": 200,
        "betatel.attempts": 1,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()
    (point,) = points("http.client.request.duration")
    assert point.count == 1
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "url.template": "/api/v1/esim/packages/{id}",
        "server.address": "127.0.0.1",
        "server.port": URL(sandbox.url).port,
        "http.response.status_code": 200,
    }
    assert points("betatel.client.retries") == []


async def test_a_retried_call_is_one_span_with_a_retry_event_and_a_resend_count(
    sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    sandbox.config.faults = FaultConfig(script=["503"])
    async with client(sandbox) as c:
        await c.inventories.list()
    span = one(spans)
    assert span.name == "GET /api/v1/esim/inventories"
    attributes = span.attributes or {}
    assert attributes["betatel.attempts"] == 2
    assert attributes["http.request.resend_count"] == 1
    assert attributes["http.response.status_code"] == 200
    assert "error.type" not in attributes
    (event,) = span.events
    assert event.name == "retry"
    assert dict(event.attributes or {}).keys() == {
        "betatel.retry.attempt",
        "betatel.retry.delay",
        "betatel.retry.cause",
    }
    assert (event.attributes or {})["betatel.retry.attempt"] == 1
    assert (event.attributes or {})["betatel.retry.cause"] == "503"
    assert 0 <= (event.attributes or {})["betatel.retry.delay"] <= 0.001
    (retries,) = points("betatel.client.retries")
    assert retries.value == 1
    assert retries.attributes["betatel.retry.cause"] == "503"
    assert retries.attributes["url.template"] == "/api/v1/esim/inventories"


async def test_every_call_names_its_span_by_the_template_never_by_an_id(
    sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    with_package = {p["sim"] for p in sandbox.data.packages_list()}
    iccid = next(s["iccid"] for s in sandbox.data.sims_list() if s["iccid"] not in with_package)
    template = sandbox.data.package_templates_list()[0]["id"]
    async with client(sandbox) as c:
        await c.api_status()
        await c.sims.get(iccid)
        await c.package_templates.get(template)
        await c.euicc_profiles.get(iccid)
        await c.euicc_profiles.qr_code(iccid)
        await c.pcr_profiles.update(iccid, active_throttling="SPEED_500_KBPS")  # a GET, the PUT, a GET
        created = await c.packages.create(sim=iccid, package_template=template)
        await c.packages.get(created.id)
        await c.packages.activate(created.id)
        await c.packages.terminate(created.id)
    names = [s.name for s in spans.get_finished_spans()]
    assert names == [
        "GET /api/v1/status",
        "GET /api/v1/esim/sim-registries/{iccid}",
        "GET /api/v1/esim/package-templates/{id}",
        "GET /api/v1/esim/euicc-profiles/{iccid}",
        "GET /api/v1/esim/euicc-profiles/{iccid}/qrcode",
        "GET /api/v1/esim/sim-pcr-profiles/{iccid}",
        "PUT /api/v1/esim/sim-pcr-profiles/{iccid}",
        "GET /api/v1/esim/sim-pcr-profiles/{iccid}",
        "POST /api/v1/esim/packages",
        "GET /api/v1/esim/packages/{id}",
        "POST /api/v1/esim/packages/{id}/activate",
        "POST /api/v1/esim/packages/{id}/terminate",
    ]
    for span in spans.get_finished_spans():
        assert span.name.split(" ")[1] == (span.attributes or {})["url.template"]


async def test_the_template_starts_with_the_base_urls_path_prefix(spans: InMemorySpanExporter) -> None:
    async with serve(SandboxConfig(api_key=KEY)) as sb:
        url = sb.url  # nothing listens there any more: the call fails, its span is named all the same
    async with bt.BetatelClient(
        api_key=KEY, user_id="u", base_url=url + "/gw", retry=bt.RetryPolicy.none()
    ) as c:
        with pytest.raises(bt.APIConnectionError):
            await c.sims.get("89148000004012345678")
    assert one(spans).name == "GET /gw/api/v1/esim/sim-registries/{iccid}"


async def test_a_404_ends_the_span_as_an_error_with_its_status_as_error_type(
    sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    async with client(sandbox) as c:
        with pytest.raises(bt.NotFoundError):
            await c.packages.get("no-such-package")
    span = one(spans)
    assert span.name == "GET /api/v1/esim/packages/{id}"
    attributes = span.attributes or {}
    assert attributes["error.type"] == "404"
    assert attributes["http.response.status_code"] == 404
    assert attributes["betatel.attempts"] == 1
    assert "http.request.resend_count" not in attributes
    assert span.status.status_code is StatusCode.ERROR
    (point,) = points("http.client.request.duration")
    assert point.attributes["error.type"] == "404"


async def test_a_call_that_never_got_an_answer_names_the_exception_class(
    spans: InMemorySpanExporter,
) -> None:
    async with serve(SandboxConfig(api_key=KEY)) as sb:
        url = sb.url  # a port nothing listens on once the sandbox is gone
    async with bt.BetatelClient(api_key=KEY, user_id="u", base_url=url, retry=FAST) as c:
        with pytest.raises(bt.APIConnectionError):
            await c.countries.list()
    span = one(spans)
    attributes = span.attributes or {}
    assert attributes["error.type"] == "APIConnectionError"
    assert "http.response.status_code" not in attributes
    assert attributes["betatel.attempts"] == FAST.max_attempts
    assert [e.attributes["betatel.retry.cause"] for e in span.events if e.attributes] == ["connect"] * (
        FAST.max_attempts - 1
    )
    assert span.status.status_code is StatusCode.ERROR


async def test_a_cancelled_call_ends_its_span_without_an_error_or_a_duration(
    sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    """A call abandoned (a hedge that lost, a caller's timeout) did not fail: no error.type, no duration."""
    sandbox.config.latency = 30.0
    async with client(sandbox) as c:
        with anyio.move_on_after(0.1):
            await c.countries.list()
    span = one(spans)
    assert "error.type" not in (span.attributes or {})
    assert span.status.status_code is StatusCode.UNSET
    assert points("http.client.request.duration") == []


async def test_a_scan_is_a_parent_span_of_its_page_requests_with_its_report(
    sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    sandbox.config.faults = FaultConfig(script=["ok", "503"])
    async with client(sandbox, hedge=False) as c, c.sims.pages(page_size=50, concurrency=2) as scan:
        items = sum([len(page.items) async for page in scan])
    report = scan.report
    assert items == 250
    finished = spans.get_finished_spans()
    (parent,) = [s for s in finished if s.name.startswith("betatel.scan")]
    assert parent.name == "betatel.scan sims"
    assert parent.kind is SpanKind.INTERNAL
    children = [s for s in finished if s is not parent]
    assert len(children) == report.requests == 5
    assert {s.name for s in children} == {"GET /api/v1/esim/sim-registries"}
    assert parent.context is not None
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id
        assert child.context is not None
        assert child.context.trace_id == parent.context.trace_id
    assert sum((s.attributes or {})["betatel.attempts"] for s in children) == 6
    attributes = dict(parent.attributes or {})
    assert attributes == {
        "betatel.scan.listing": "sims",
        "server.address": "127.0.0.1",
        "server.port": URL(sandbox.url).port,
        "betatel.scan.pages": 5,
        "betatel.scan.items": 250,
        "betatel.scan.requests": 5,
        "betatel.scan.retries": 1,
        "betatel.scan.hedges": 0,
        "betatel.scan.hedges_won": 0,
        "betatel.scan.restarts": 0,
    }
    assert parent.status.status_code is StatusCode.UNSET


async def test_a_hedge_is_a_child_span_marked_as_such_and_the_loser_ends_without_error(
    spans: InMemorySpanExporter,
) -> None:
    async with serve(
        SandboxConfig(sims=100, seed=5, latency=0.005, faults=FaultConfig(slow_seconds=20.0), api_key=KEY)
    ) as sb:
        stalled: list[int] = []

        def on_request(method: str, path: str, query: Mapping[str, str]) -> None:
            # The first request for offset 30 answers in 20 s: only its hedge can finish the scan.
            if path.endswith("/sim-registries") and query.get("offset") == "30":
                sb.config.faults = FaultConfig(script=["ok" if stalled else "slow"], slow_seconds=20.0)
                stalled.append(30)

        async with client(sb, max_concurrency=4) as c:
            await c.sims.all(page_size=10)  # the listing's latencies are learned
            spans.clear()
            sb.on_request = on_request
            with anyio.fail_after(10):
                async with c.sims.iter(page_size=10) as scan:
                    assert len([sim async for sim in scan]) == 100
    assert scan.report.hedges_won >= 1
    finished = spans.get_finished_spans()
    (parent,) = [s for s in finished if s.name == "betatel.scan sims"]
    assert (parent.attributes or {})["betatel.scan.hedges_won"] == scan.report.hedges_won
    children = [s for s in finished if s is not parent]
    assert parent.context is not None
    assert all(s.parent is not None and s.parent.span_id == parent.context.span_id for s in children)
    hedges = [s for s in children if (s.attributes or {}).get("betatel.hedge")]
    assert len(hedges) == scan.report.hedges
    assert any((s.attributes or {}).get("http.response.status_code") == 200 for s in hedges)
    assert all(s.status.status_code is StatusCode.UNSET for s in children)  # the loser was cancelled
    assert len(children) == scan.report.requests + scan.report.hedges


async def test_a_failed_scan_says_why_on_its_span(sandbox: Sandbox, spans: InMemorySpanExporter) -> None:
    sandbox.config.faults = FaultConfig(script=["ok", "400"])
    async with client(sandbox, hedge=False) as c:
        with pytest.raises(bt.BadRequestError):
            await c.sims.all(page_size=50, concurrency=1)
    (parent,) = [s for s in spans.get_finished_spans() if s.name == "betatel.scan sims"]
    assert (parent.attributes or {})["error.type"] == "400"
    assert parent.status.status_code is StatusCode.ERROR


async def test_a_call_inside_the_applications_span_is_its_child(
    sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    async with client(sandbox) as c:
        with trace.get_tracer("app").start_as_current_span("handle order") as outer:
            await c.countries.list()
    (call,) = [s for s in spans.get_finished_spans() if s.name != "handle order"]
    assert call.parent is not None
    assert call.parent.span_id == outer.get_span_context().span_id


async def test_tracing_false_records_no_span_and_no_metric(
    sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    async with client(sandbox, tracing=False) as c:
        await c.countries.list()
        await c.sims.all(page_size=100)
        await c.with_options(timeout=5).countries.list()
        assert spans.get_finished_spans() == ()
        assert points("http.client.request.duration") == []
        await c.with_options(tracing=True).countries.list()  # a view may turn it on
        assert one(spans).name == "GET /api/v1/esim/countries"
    async with client(sandbox) as c:
        spans.clear()
        await c.with_options(tracing=False).countries.list()  # or off
        assert spans.get_finished_spans() == ()


def test_tracing_must_be_a_bool() -> None:
    with pytest.raises(bt.InvalidArgumentTypeError, match="tracing"):
        bt.BetatelClient(api_key="k", user_id="u", tracing="no")  # type: ignore[arg-type]
    c = bt.BetatelClient(api_key="k", user_id="u")
    with pytest.raises(bt.InvalidArgumentTypeError, match="tracing"):
        c.with_options(tracing=1)  # type: ignore[arg-type]


async def test_no_span_attribute_or_event_holds_the_key(spans: InMemorySpanExporter) -> None:
    """Calls that succeed, are retried, fail with a status, fail to connect, and a scan: the key nowhere."""
    async with serve(SandboxConfig(sims=120, seed=4, api_key=KEY)) as sb:
        sb.config.faults = FaultConfig(script=["503", "ok", "429", "500"])
        async with client(sb) as c:
            await c.countries.list()
            await c.sims.all(page_size=40)
            await c.sims.get(sb.data.sims_list()[0]["iccid"])
            with pytest.raises(bt.NotFoundError):
                await c.packages.get(KEY)  # the key even as an id: the template has none
        async with bt.BetatelClient(api_key="x" + KEY, user_id="u", base_url=sb.url, retry=FAST) as wrong:
            with pytest.raises(bt.AuthenticationError):
                await wrong.countries.list()
    finished = spans.get_finished_spans()
    assert len(finished) >= 8
    texts: list[str] = []
    for span in finished:
        texts += [span.name, repr(dict(span.attributes or {})), repr(span.status.description)]
        texts += [repr(span.resource.attributes)]
        for event in span.events:
            texts += [event.name, repr(dict(event.attributes or {}))]
        texts.append(span.to_json())
    assert leaks(KEY, texts) == []
    metric_data = _READER.get_metrics_data()
    assert metric_data is not None
    assert leaks(KEY, [metric_data.to_json()]) == []


# -- without the package, or with tracing off: nothing imported --------------------------------


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BETATEL_")}
    environment.update(env)
    return subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=60,
    )


_CALLS = """
import asyncio, sys
from yarl import URL

import betatel_async as bt
from betatel_async.sandbox import FaultConfig, SandboxConfig, serve

async def calls(tracing, faults=(), clients=1):
    async with serve(SandboxConfig(sims=30)) as sb:
        sb.config.faults = FaultConfig(script=list(faults))
        for _ in range(clients):
            async with bt.BetatelClient(
                api_key=sb.api_key, user_id=sb.user_id, base_url=sb.url, tracing=tracing,
                retry=bt.RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_max=0.001),
            ) as client:
                try:
                    await client.countries.list()
                    await client.sims.all(page_size=10)
                except bt.APIError:
                    pass
        return client
"""


def test_import_and_calls_with_tracing_off_never_import_opentelemetry() -> None:
    done = _run(
        _CALLS
        + """
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported by import betatel_async"
asyncio.run(calls(tracing=False))
assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported with tracing=False"
asyncio.run(calls(tracing=True))
assert "opentelemetry.trace" in sys.modules, "tracing on, and the package installed: imported"
print("ok")
"""
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_without_opentelemetry_calls_work_and_the_client_stops_looking() -> None:
    done = _run(
        """
import sys
sys.modules["opentelemetry"] = None  # what an absent package looks like to import: ImportError
"""
        + _CALLS
        + """
client = asyncio.run(calls(tracing=True))
assert client._transport.telemetry is None
print("ok")
"""
    )
    assert done.stdout.strip() == "ok", done.stderr


# -- logging -------------------------------------------------------------------------------------


async def test_retries_log_at_info_and_giving_up_at_warning(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="betatel_async")
    sandbox.config.faults = FaultConfig(script=["503", "503", "503"])
    async with client(sandbox, retry=bt.RetryPolicy(max_attempts=2, backoff_base=0.001)) as c:
        with pytest.raises(bt.ServerError):
            await c.countries.list()  # 503, then 503: given up
        await c.countries.list()  # 503, then the answer
    records = [(r.levelno, r.getMessage().split(" ", 1)[0]) for r in caplog.records]
    assert records == [
        (logging.INFO, "retrying"),
        (logging.WARNING, "giving"),
        (logging.INFO, "retrying"),
    ]
    assert "after 2 attempts" in caplog.records[1].getMessage()


async def test_an_error_not_retried_is_not_logged(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="betatel_async")
    async with client(sandbox) as c:
        with pytest.raises(bt.NotFoundError):
            await c.packages.get("no-such-package")
    assert caplog.records == []


@pytest.mark.parametrize(
    ("value", "retry_lines", "debug_lines"),
    [("info", 1, 0), ("DEBUG", 1, 1), ("", 0, 0), ("verbose", 0, 0)],
)
def test_betatel_log_turns_on_logging_to_stderr_once(value: str, retry_lines: int, debug_lines: int) -> None:
    """Two clients, one retry: with BETATEL_LOG, one line for it (one handler), and DEBUG lines at debug."""
    code = (
        _CALLS
        + """
async def main():
    await calls(tracing=False, faults=["503"])
    await calls(tracing=False, clients=2)
asyncio.run(main())
"""
    )
    done = _run(code, BETATEL_LOG=value)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert sum(" INFO retrying GET /api/v1/esim/countries" in line for line in lines) == retry_lines, lines
    assert sum(" DEBUG GET /api/v1/esim/countries -> 200" in line for line in lines) == debug_lines * 3, lines
    assert all(line.split(" ")[2] == "betatel_async" for line in lines), lines


# -- the documented recipe: metrics to Prometheus ---------------------------------------------------

PROMETHEUS_RECIPE = """
import asyncio

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import start_http_server

import betatel_async as bt

# Once, at start-up: Prometheus scrapes http://<host>:9464/metrics.
start_http_server(port=9464)
metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))


async def main() -> None:
    async with bt.BetatelClient.from_env() as client:
        await client.countries.list()
        await client.sims.all()


asyncio.run(main())
"""


def test_recipe_prometheus_exports_call_durations_and_retries() -> None:
    """The recipe of "Tracing, logging and metrics", run as written but for the port, then the page Prometheus would scrape.

    The sandbox serves from a thread of the recipe's process and answers
    the first request 503, so the recipe's calls are timed and one is retried.
    """
    sandbox_thread = textwrap.dedent(
        """
        import asyncio, os, threading
        import prometheus_client
        from betatel_async.sandbox import FaultConfig, SandboxConfig, serve

        ready = threading.Event()

        def serve_sandbox():
            async def run():
                async with serve(SandboxConfig(sims=30)) as sb:
                    sb.config.faults = FaultConfig(script=["503"])
                    os.environ.update(
                        BETATEL_API_KEY=sb.api_key, BETATEL_USER_ID=sb.user_id, BETATEL_BASE_URL=sb.url
                    )
                    ready.set()
                    await asyncio.Event().wait()  # until the process ends
            asyncio.run(run())

        threading.Thread(target=serve_sandbox, daemon=True).start()
        assert ready.wait(10)
        """
    )
    # the test runs what the page shows
    assert python_block("docs/pages/observability.md", "PrometheusMetricReader") == PROMETHEUS_RECIPE.lstrip(
        "\n"
    )
    recipe = PROMETHEUS_RECIPE.replace("port=9464", "port=0, addr='127.0.0.1'")
    assert recipe != PROMETHEUS_RECIPE
    done = _run(sandbox_thread + recipe + "\nprint(prometheus_client.generate_latest().decode())\n")
    assert done.returncode == 0, done.stderr
    series = {}
    for line in done.stdout.splitlines():
        if not line.startswith("#") and "{" in line:
            name_labels, value = line.rsplit(" ", 1)
            name, labels = name_labels.split("{", 1)
            series[name, frozenset(labels.rstrip("}").split(","))] = float(value)
    countries = {
        'http_request_method="GET"',
        'url_template="/api/v1/esim/countries"',
        'server_address="127.0.0.1"',
        'http_response_status_code="200"',
    }
    durations = [
        value
        for (name, labels), value in series.items()
        if name == "http_client_request_duration_seconds_count" and countries <= labels
    ]
    assert durations == [1.0], done.stdout
    retries = [
        value
        for (name, labels), value in series.items()
        if name == "betatel_client_retries_total" and 'betatel_retry_cause="503"' in labels
    ]
    assert retries == [1.0], done.stdout


def test_without_a_provider_set_no_span_is_made_and_one_set_later_is_used() -> None:
    """The API drops every span and measurement until the application sets a provider: the SDK
    then makes none (a call costs two look-ups), and starts as soon as a provider is set."""
    result = _run(
        _CALLS
        + """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from betatel_async._telemetry import Telemetry

telemetry = Telemetry(URL("http://127.0.0.1:1"))
assert telemetry.call("GET", "/x") is None and telemetry.scan("sims") is None

async def main():
    async with serve(SandboxConfig(sims=30)) as sb:
        async with bt.BetatelClient(api_key=sb.api_key, user_id=sb.user_id, base_url=sb.url) as client:
            await client.countries.list()  # no provider yet: no span, and tracing stays on
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            await client.countries.list()
            return [span.name for span in exporter.get_finished_spans()]

print(asyncio.run(main()))
"""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['GET /api/v1/esim/countries']"
