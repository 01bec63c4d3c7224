"""OpenTelemetry spans and metrics of API calls and scans, and ``BETATEL_LOG``.

Strategy: ``opentelemetry-api`` is optional (the ``otel`` extra) and never
imported with the package. A client with tracing on (the default) holds a
`Telemetry`, which costs nothing until the first call; that call
imports the API once per process (`_load()`; an ``ImportError`` means no
tracing, and the transport then drops its `Telemetry`, so a client
without the package pays one attribute check per call). Spans come from the
*global* tracer provider and metrics go to the *global* meter provider: with
no provider set, the API's proxies record nothing, and they start recording
once the application sets one, before or after the client was made.

One span per logical call (retries are its events, not child spans), as the
SDK instrumentations of openai and Stripe do; a scan is one span whose page
requests are its children. The attributes follow the OpenTelemetry HTTP
semantic conventions for clients. Nothing here ever sees the request's
headers or a server's text: a span holds the method, the path *template*
(no id, no ICCID), the host and port, status codes, exception class names
and counts, so it cannot carry the API key.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import Counter, Histogram
    from opentelemetry.trace import Span, SpanKind, Status, Tracer
    from yarl import URL

    from ._scan_machine import ScanReport

__all__ = ["CallTrace", "ScanTrace", "Telemetry", "error_type", "log_from_env"]

INSTRUMENTATION_NAME: Final = "betatel_async"

DURATION_METRIC: Final = "http.client.request.duration"
RETRY_METRIC: Final = "betatel.client.retries"

# The semantic conventions' advisory buckets for http.client.request.duration, in seconds.
_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

# The conventions' known methods; any other is reported as "_OTHER" (its
# spelling in http.request.method_original), so a caller's made-up method
# cannot multiply metric series.
_KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class _Otel:
    """The parts of opentelemetry-api the SDK uses, looked up once per process. Private."""

    __slots__ = (
        "_from_environment",
        "_metrics_globals",
        "_trace_globals",
        "attach",
        "detach",
        "duration",
        "error",
        "internal",
        "kind",
        "retries",
        "set_span",
        "tracer",
    )

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace

        from ._version import __version__

        self.tracer: Tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__)
        meter = metrics.get_meter(INSTRUMENTATION_NAME, __version__)
        self.duration: Histogram = meter.create_histogram(
            DURATION_METRIC,
            unit="s",
            description="Duration of the SDK's API calls, retries and their waits included.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.retries: Counter = meter.create_counter(
            RETRY_METRIC, unit="{retry}", description="Attempts of API calls sent again after a failure."
        )
        self.kind: SpanKind = trace.SpanKind.CLIENT
        self.internal: SpanKind = trace.SpanKind.INTERNAL
        self.error: Status = trace.Status(trace.StatusCode.ERROR)
        self.set_span = trace.set_span_in_context
        self.attach = context.attach
        self.detach = context.detach
        # Whether the application set a provider is read from the API's own
        # globals: its getters look at os.environ on every call until one is
        # set (microseconds per call). A layout without them, or a provider
        # named in the environment, counts as configured (spans made).
        self._trace_globals: Any = getattr(trace, "_TRACER_PROVIDER", _MISSING) is not _MISSING and trace
        metrics_globals: Any
        try:
            from opentelemetry.metrics import _internal as metrics_globals
        except ImportError:  # pragma: no cover - another opentelemetry-api layout
            metrics_globals = None
        self._metrics_globals: Any = (
            getattr(metrics_globals, "_METER_PROVIDER", _MISSING) is not _MISSING and metrics_globals
        )
        self._from_environment = any(name in os.environ for name in _PROVIDER_VARIABLES)

    def configured(self) -> bool:
        """Whether the application set a tracer or meter provider (now: it may do so after us).

        Without one, every span and measurement is dropped by the API: the
        SDK then makes none, and a call costs two attribute reads instead of a span.
        """
        if self._from_environment or not self._trace_globals or not self._metrics_globals:
            return True
        return (
            self._trace_globals._TRACER_PROVIDER is not None
            or self._metrics_globals._METER_PROVIDER is not None
        )


_NOT_LOADED: Final[Any] = object()
_MISSING: Final[Any] = object()
_PROVIDER_VARIABLES: Final = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
_otel: _Otel | None = _NOT_LOADED


def _load() -> _Otel | None:
    """opentelemetry-api's parts, imported on first use; ``None`` if it is not installed."""
    global _otel
    if _otel is _NOT_LOADED:
        try:
            _otel = _Otel()
        except ImportError:
            _otel = None
    return _otel


def error_type(error: BaseException) -> str:
    """The ``error.type`` of a failure: the status code of an HTTP error, else the exception's class name."""
    status = getattr(error, "status", None)
    if type(status) is int and status >= 300:
        return str(status)
    return type(error).__qualname__


class Telemetry:
    """A client's tracing and metrics: where its spans say they went. Private.

    Shared by a client and its ``with_options`` views. Creating one imports
    nothing; `call()` and `scan()` return ``None`` when
    opentelemetry-api is not installed, or while the application has set
    neither a tracer nor a meter provider.
    """

    __slots__ = ("_address", "_port")

    def __init__(self, base_url: URL) -> None:
        self._address = base_url.host or ""
        self._port = base_url.port or _DEFAULT_PORTS.get(base_url.scheme, 0)

    @staticmethod
    def installed() -> bool:
        """Whether opentelemetry-api can be imported (imported on the first call)."""
        return _load() is not None

    def call(self, method: str, template: str, *, hedge: bool = False) -> CallTrace | None:
        """Start the span of one logical call (``template``: its path with ``{...}`` for ids)."""
        otel = _load()
        if otel is None or not otel.configured():
            return None
        return CallTrace(otel, method, template, self._address, self._port, hedge=hedge)

    def scan(self, listing: str) -> ScanTrace | None:
        """Start the span of a scan of ``listing`` (``"sims"``, ``"packages"``, ...)."""
        otel = _load()
        if otel is None or not otel.configured():
            return None
        return ScanTrace(otel, listing, self._address, self._port)


class CallTrace:
    """The span and metrics of one logical call, current in its task while the call runs. Private."""

    __slots__ = ("_attributes", "_otel", "_retries", "_span", "_started", "_token")

    def __init__(
        self, otel: _Otel, method: str, template: str, address: str, port: int, *, hedge: bool
    ) -> None:
        known = method if method in _KNOWN_METHODS else "_OTHER"
        attributes: dict[str, Any] = {
            "http.request.method": known,
            "url.template": template,
            "server.address": address,
            "server.port": port,
        }
        span_attributes = dict(attributes)
        if known != method:
            span_attributes["http.request.method_original"] = method
        if hedge:
            span_attributes["betatel.hedge"] = True
        self._otel = otel
        self._attributes = attributes  # the metrics' share of the span's
        self._span: Span = otel.tracer.start_span(
            f"{known if known != '_OTHER' else 'HTTP'} {template}", kind=otel.kind, attributes=span_attributes
        )
        # Current while the call runs, so that spans of the HTTP library's
        # own instrumentation (if any) are its children.
        self._token = otel.attach(otel.set_span(self._span))
        self._retries = 0
        self._started = time.perf_counter()

    def retried(self, attempt: int, delay: float, cause: str) -> None:
        """Attempt number ``attempt`` failed with ``cause`` (a status code or a kind of failure);
        the next one goes out in ``delay`` seconds."""
        self._retries += 1
        self._span.add_event(
            "retry",
            {"betatel.retry.attempt": attempt, "betatel.retry.delay": delay, "betatel.retry.cause": cause},
        )
        self._otel.retries.add(1, {**self._attributes, "betatel.retry.cause": cause})

    def succeeded(self, status: int, attempts: int) -> None:
        """End the call with its 2xx ``status`` after ``attempts`` requests."""
        self._end({"http.response.status_code": status}, attempts)

    def failed(self, error: BaseException) -> None:
        """End the call with ``error``.

        A cancellation (a hedge that lost, a scan stopped early) ends the
        span without an error and records no duration: the call did not end,
        it was abandoned.
        """
        if not isinstance(error, Exception):
            self._span.end()
            self._otel.detach(self._token)
            return
        outcome: dict[str, Any] = {"error.type": error_type(error)}
        status = getattr(error, "status", None)
        if type(status) is int and status:
            outcome["http.response.status_code"] = status
        self._span.set_status(self._otel.error)
        attempts = getattr(error, "attempts", None)
        self._end(outcome, attempts if type(attempts) is int else self._retries + 1)

    def _end(self, outcome: dict[str, Any], attempts: int) -> None:
        otel = self._otel
        span = self._span
        try:
            if span.is_recording():
                span.set_attributes(outcome)
                span.set_attribute("betatel.attempts", attempts)
                if attempts > 1:
                    span.set_attribute("http.request.resend_count", attempts - 1)
            otel.duration.record(time.perf_counter() - self._started, {**self._attributes, **outcome})
        finally:
            span.end()
            otel.detach(self._token)


class ScanTrace:
    """The span of a scan; its page requests' spans are its children. Private.

    The span is never made current in the consumer's task (an async
    generator runs in its caller's context, which it would leak into
    between pages); `task_context()` gives each request task a context
    where it is.
    """

    __slots__ = ("_context", "_otel", "_span")

    def __init__(self, otel: _Otel, listing: str, address: str, port: int) -> None:
        self._otel = otel
        self._span: Span = otel.tracer.start_span(
            f"betatel.scan {listing}",
            kind=otel.internal,
            attributes={"betatel.scan.listing": listing, "server.address": address, "server.port": port},
        )
        self._context: Context = otel.set_span(self._span)

    def task_context(self) -> contextvars.Context:
        """A copy of the current context with the scan's span current, for a new request task."""
        context = contextvars.copy_context()
        context.run(self._otel.attach, self._context)
        return context

    def end(self, report: ScanReport, error: BaseException | None) -> None:
        """End the scan with what ``report`` says, and ``error`` if it failed (not if it was stopped)."""
        span = self._span
        if span.is_recording():
            span.set_attributes(
                {
                    "betatel.scan.pages": report.pages,
                    "betatel.scan.items": report.items,
                    "betatel.scan.requests": report.requests,
                    "betatel.scan.retries": report.retries,
                    "betatel.scan.hedges": report.hedges,
                    "betatel.scan.hedges_won": report.hedges_won,
                    "betatel.scan.restarts": report.restarts,
                }
            )
            if isinstance(error, Exception):
                span.set_attribute("error.type", error_type(error))
                span.set_status(self._otel.error)
        span.end()


# -- BETATEL_LOG -------------------------------------------------------------------------------

LOG_VARIABLE: Final = "BETATEL_LOG"
_LOG_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO}
_log_read = False


def log_from_env() -> logging.Handler | None:
    """Read ``BETATEL_LOG`` once per process and, if it says ``debug`` or ``info``, log to stderr.

    Adds a ``StreamHandler`` on standard error to the ``betatel_async``
    logger and sets the logger to that level, as ``OPENAI_LOG`` does for
    openai. Any other value (or none) changes nothing. Later calls do
    nothing, so several clients add one handler.

    Returns:
        The handler added, or ``None``.
    """
    global _log_read
    if _log_read:
        return None
    _log_read = True
    level = _LOG_LEVELS.get(os.environ.get(LOG_VARIABLE, "").strip().lower())
    if level is None:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger(INSTRUMENTATION_NAME)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
