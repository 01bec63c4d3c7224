"""Retry decisions, Retry-After parsing, the retry budget and AIMD: all pure."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from betatel_async._retry import (
    DEFAULT_RETRY_STATUSES,
    ERROR_KINDS,
    AdaptiveLimit,
    RetryBudget,
    RetryDecision,
    RetryPolicy,
    decide,
    parse_retry_after,
    parse_retry_after_ms,
    retry_after_from_headers,
)

MANY = settings(max_examples=1000)

# 2023-09-29T16:26:37Z, the instant openai-python's Retry-After table uses.
NOW = datetime(2023, 9, 29, 16, 26, 37, tzinfo=UTC)


def const(value: float) -> Callable[[], float]:
    return lambda: value


def ceiling(policy: RetryPolicy, attempt: int) -> float:
    """min(backoff_max, backoff_base * 2 ** (attempt - 1)), in exact arithmetic."""
    exact = Fraction(policy.backoff_base) * 2 ** (attempt - 1)
    return float(min(Fraction(policy.backoff_max), exact))


# -- strategies ---------------------------------------------------------------

seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
unit = st.floats(min_value=0.0, max_value=1.0)
policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 10),
    backoff_base=st.floats(0, 100, allow_nan=False),
    backoff_max=st.floats(0, 1000, allow_nan=False),
    max_retry_after=st.one_of(seconds, st.just(math.inf)),
    deadline=st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e4)),
    retry_statuses=st.frozensets(st.integers(400, 599)),
)
statuses = st.one_of(st.none(), st.integers(100, 599))
error_kinds = st.one_of(st.none(), st.sampled_from(sorted(ERROR_KINDS)))


@st.composite
def decide_inputs(draw: st.DrawFn) -> dict[str, object]:
    return {
        "policy": draw(policies),
        "attempt": draw(st.integers(1, 12)),
        "method": draw(st.sampled_from(["GET", "POST", "get"])),
        "status": draw(statuses),
        "error_kind": draw(error_kinds),
        "retry_after": draw(st.one_of(st.none(), seconds)),
        "elapsed": draw(seconds),
        "rand": const(draw(unit)),
        "idempotent": draw(st.booleans()),
        "request_sent": draw(st.one_of(st.none(), st.booleans())),
    }


def run_decide(inputs: dict[str, object]) -> RetryDecision:
    return decide(**inputs)  # type: ignore[arg-type]


def idempotent_get(**changes: object) -> RetryDecision:
    inputs: dict[str, object] = {
        "policy": RetryPolicy(),
        "attempt": 1,
        "method": "GET",
        "status": None,
        "error_kind": None,
        "retry_after": None,
        "elapsed": 0.0,
        "rand": const(0.5),
        "idempotent": True,
        "request_sent": None,
    }
    inputs.update(changes)
    return run_decide(inputs)


def create_post(**changes: object) -> RetryDecision:
    return idempotent_get(method="POST", idempotent=False, **changes)


# -- RetryPolicy --------------------------------------------------------------


def test_policy_defaults() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert policy.backoff_base == 0.5
    assert policy.backoff_max == 8.0
    assert policy.max_retry_after == 30.0
    assert policy.deadline is None
    assert policy.retry_statuses == frozenset({408, 429, 500, 502, 503, 504}) == DEFAULT_RETRY_STATUSES


def test_policy_none_never_retries() -> None:
    policy = RetryPolicy.none()
    assert policy.max_attempts == 1
    assert not idempotent_get(policy=policy, status=503).retry


def test_policy_is_frozen_and_keyword_only() -> None:
    policy = RetryPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_attempts = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy(5)  # type: ignore[call-arg]


def test_policy_evolve_changes_one_field_and_validates() -> None:
    policy = attrs.evolve(RetryPolicy(), max_attempts=5)
    assert policy.max_attempts == 5
    assert policy.backoff_max == 8.0
    with pytest.raises(ValueError, match="max_attempts"):
        attrs.evolve(policy, max_attempts=0)


def test_policy_retry_statuses_accepts_any_iterable_of_ints() -> None:
    assert RetryPolicy(retry_statuses=[503, 503, 429]).retry_statuses == frozenset({429, 503})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", -1),
        ("backoff_base", -0.1),
        ("backoff_base", math.nan),
        ("backoff_base", math.inf),
        ("backoff_max", -1.0),
        ("backoff_max", math.inf),
        ("max_retry_after", -1.0),
        ("max_retry_after", math.nan),
        ("deadline", 0.0),
        ("deadline", -5.0),
        ("deadline", math.nan),
        ("retry_statuses", {200}),
        ("retry_statuses", {399}),
        ("retry_statuses", {600}),
        ("retry_statuses", {5003}),
    ],
)
def test_policy_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 2.0),
        ("max_attempts", True),
        ("max_attempts", "3"),
        ("backoff_base", "0.5"),
        ("backoff_max", None),
        ("max_retry_after", True),
        ("deadline", "10"),
        ("retry_statuses", "503"),
        ("retry_statuses", 503),
        ("retry_statuses", {"503"}),
    ],
)
def test_policy_rejects_bad_types_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"^{field}: "):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_policy_accepts_ints_for_seconds_and_infinite_max_retry_after() -> None:
    policy = RetryPolicy(backoff_base=1, backoff_max=10, max_retry_after=math.inf, deadline=60)
    assert policy.backoff(4, const(1.0)) == 8


# -- backoff ------------------------------------------------------------------


@MANY
@given(policy=policies, attempt=st.integers(1, 2000), r=unit)
def test_backoff_within_zero_and_capped_exponential_ceiling(
    policy: RetryPolicy, attempt: int, r: float
) -> None:
    delay = policy.backoff(attempt, const(r))
    assert 0.0 <= delay <= ceiling(policy, attempt)
    assert delay <= policy.backoff_max


@given(policy=policies, attempt=st.integers(1, 60))
def test_backoff_full_jitter_spans_zero_to_ceiling(policy: RetryPolicy, attempt: int) -> None:
    assert policy.backoff(attempt, const(0.0)) == 0.0
    assert policy.backoff(attempt, const(1.0)) == pytest.approx(ceiling(policy, attempt))


@given(seed=st.integers(), attempt=st.integers(1, 30))
def test_backoff_with_a_seeded_random_is_reproducible(seed: int, attempt: int) -> None:
    policy = RetryPolicy()
    first = policy.backoff(attempt, random.Random(seed).random)
    assert first == policy.backoff(attempt, random.Random(seed).random)
    assert 0.0 <= first <= ceiling(policy, attempt)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (10**6, 8.0)],
)
def test_backoff_default_ceilings_double_then_cap_at_8_seconds(attempt: int, expected: float) -> None:
    assert RetryPolicy().backoff(attempt, const(1.0)) == expected


def test_backoff_survives_absurd_attempt_numbers() -> None:
    assert RetryPolicy(backoff_base=5e-324).backoff(10**9, const(1.0)) == 8.0
    assert RetryPolicy(backoff_base=0.0).backoff(10**9, const(1.0)) == 0.0


@pytest.mark.parametrize("attempt", [0, -1])
def test_backoff_rejects_attempt_below_one(attempt: int) -> None:
    with pytest.raises(ValueError, match=r"^attempt: "):
        RetryPolicy().backoff(attempt, const(0.5))


@pytest.mark.parametrize("r", [-0.1, 1.5, math.nan])
def test_backoff_rejects_rand_outside_unit_interval(r: float) -> None:
    with pytest.raises(ValueError, match=r"^rand: "):
        RetryPolicy().backoff(1, const(r))


# -- parse_retry_after --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # delay-seconds
        ("20", 20.0),
        ("0", 0.0),
        ("007", 7.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        (" 20 ", 20.0),
        ("\t3\r\n", 3.0),
        ("99999999999999999999999999999999999", 1e35),  # huge but real: the policy caps it
        # HTTP-date, measured from NOW
        ("Fri, 29 Sep 2023 16:26:57 GMT", 20.0),
        ("Fri, 29 Sep 2023 16:27:37 GMT", 60.0),
        ("Fri, 29 Sep 2023 16:26:37 GMT", 0.0),  # now
        ("Fri, 29 Sep 2023 16:26:27 GMT", 0.0),  # past
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # long past
        ("Fri, 29 Sep 2023 16:27:37 -0000", 60.0),  # "-0000": naive in the stdlib, UTC here
        ("Fri, 29 Sep 2023 16:27:37 +0000", 60.0),
        ("Fri, 29 Sep 2023 18:27:37 +0200", 60.0),
        ("Fri, 29 Sep 2023 16:27:37 +0100", 0.0),  # an hour earlier: past
        ("Fri, 29 Sep 2023 16:27:37", 60.0),  # no zone: GMT
        ("  Fri, 29 Sep 2023 16:26:57 GMT  ", 20.0),
        ("Friday, 29-Sep-23 16:26:57 GMT", 20.0),  # RFC 850
        ("Fri Sep 29 16:26:57 2023", 20.0),  # asctime
        # no usable value
        (None, None),
        ("", None),
        ("   ", None),
        ("-10", None),
        ("-0.5", None),
        ("+5", None),
        ("abc", None),
        ("20s", None),
        ("1e3", None),
        ("1_000", None),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("-inf", None),
        ("Infinity", None),
        ("1.", None),
        (".5", None),
        ("1,5", None),
        ("\u0663", None),  # ARABIC-INDIC DIGIT THREE: float() takes it, HTTP does not
        ("9" * 400, None),  # overflows a float
        ("Fri, 31 Feb 2023 16:26:37 GMT", None),
        ("Fri, 29 Sep 2023 25:26:37 GMT", None),
        ("Fri, 29 Sep 99999 16:26:37 GMT", None),
        ("1 2 3 4 5", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_defaults_now_to_the_current_time() -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    parsed = parse_retry_after(future.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert parsed is not None
    assert 3500 < parsed <= 3600


def test_parse_retry_after_accepts_any_aware_now() -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert parse_retry_after("Fri, 29 Sep 2023 16:26:57 GMT", now=plus_two) == 20.0


def test_parse_retry_after_rejects_a_naive_now() -> None:
    with pytest.raises(ValueError, match=r"^now: "):
        parse_retry_after("Fri, 29 Sep 2023 16:26:57 GMT", now=datetime(2023, 9, 29))


@given(st.text())
def test_parse_retry_after_never_raises_and_returns_finite_non_negative(value: str) -> None:
    result = parse_retry_after(value, now=NOW)
    assert result is None or (math.isfinite(result) and result >= 0)


@given(st.integers(0, 10**12))
def test_parse_retry_after_round_trips_integer_seconds(n: int) -> None:
    assert parse_retry_after(str(n), now=NOW) == float(n)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1500", 1.5),
        ("0", 0.0),
        ("250", 0.25),
        (" 250 ", 0.25),
        ("1.5", 0.0015),
        (None, None),
        ("", None),
        ("-1", None),
        ("abc", None),
        ("nan", None),
        ("inf", None),
        ("Fri, 29 Sep 2023 16:26:57 GMT", None),  # milliseconds only, never a date
    ],
)
def test_parse_retry_after_ms_gives_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after_ms(value) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "Retry-After": "20"}, 1.5),
        ({"retry-after-ms": "junk", "Retry-After": "20"}, 20.0),
        ({"Retry-After": "Fri, 29 Sep 2023 16:26:57 GMT"}, 20.0),
        ({"retry-after-ms": "0"}, 0.0),
        ({"Retry-After": "junk"}, None),
        ({}, None),
    ],
)
def test_retry_after_from_headers_prefers_milliseconds(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after_from_headers(headers, now=NOW) == expected


def test_retry_after_from_headers_is_case_insensitive_with_aiohttp_headers() -> None:
    headers = CIMultiDict({"RETRY-AFTER": "7", "Content-Type": "application/json"})
    assert retry_after_from_headers(headers, now=NOW) == 7.0
    headers["Retry-After-Ms"] = "100"
    assert retry_after_from_headers(headers, now=NOW) == 0.1


# -- decide: tables -----------------------------------------------------------


@pytest.mark.parametrize("status", sorted(DEFAULT_RETRY_STATUSES))
def test_get_retries_on_default_retry_statuses(status: int) -> None:
    decision = idempotent_get(status=status)
    assert decision.retry
    assert decision.reason == f"retry: status {status}"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 422, 501, 505])
def test_get_never_retries_definitive_statuses(status: int) -> None:
    decision = idempotent_get(status=status)
    assert not decision.retry
    assert decision.delay == 0.0
    assert f"status {status} is not retryable" in decision.reason


@pytest.mark.parametrize("kind", ["connect", "timeout", "disconnect", "truncated"])
def test_get_retries_on_transient_errors(kind: str) -> None:
    assert idempotent_get(error_kind=kind).retry


def test_get_retries_a_2xx_whose_body_was_cut_short() -> None:
    assert idempotent_get(status=200, error_kind="truncated").retry


def test_get_does_not_retry_a_truncated_definitive_status() -> None:
    assert not idempotent_get(status=404, error_kind="truncated").retry


def test_get_does_not_retry_a_malformed_body() -> None:
    decision = idempotent_get(status=200, error_kind="malformed")
    assert not decision.retry
    assert "malformed" in decision.reason


def test_get_retries_a_retryable_status_with_a_malformed_error_body() -> None:
    assert idempotent_get(status=502, error_kind="malformed").retry


def test_nothing_failed_is_not_retried() -> None:
    assert not idempotent_get(status=200).retry
    assert not idempotent_get().retry


def test_create_is_retried_when_the_connection_never_opened() -> None:
    assert create_post(error_kind="connect").retry
    assert create_post(error_kind="connect", request_sent=False).retry


def test_create_is_not_retried_when_the_transport_says_it_was_sent() -> None:
    assert not create_post(error_kind="connect", request_sent=True).retry


@pytest.mark.parametrize("kind", ["timeout", "disconnect", "truncated", "malformed"])
@pytest.mark.parametrize("request_sent", [None, False, True])
def test_create_is_not_retried_after_an_ambiguous_error(kind: str, request_sent: bool | None) -> None:
    decision = create_post(error_kind=kind, request_sent=request_sent)
    assert not decision.retry
    assert "POST is not idempotent" in decision.reason


@pytest.mark.parametrize("status", [*sorted(DEFAULT_RETRY_STATUSES), 409])
def test_create_is_not_retried_on_any_status(status: int) -> None:
    assert not create_post(status=status).retry


def test_idempotent_post_is_retried_like_a_get() -> None:
    """Activate and terminate: POSTs the caller declares idempotent."""
    assert idempotent_get(method="POST", status=503).retry
    assert idempotent_get(method="POST", error_kind="timeout").retry


def test_gives_up_at_max_attempts() -> None:
    assert idempotent_get(attempt=2, status=503).retry
    decision = idempotent_get(attempt=3, status=503)
    assert not decision.retry
    assert decision.reason == "no retry: attempts exhausted (3 of 3) after status 503"


def test_retry_after_longer_than_the_backoff_sets_the_delay() -> None:
    decision = idempotent_get(status=429, retry_after=20.0, rand=const(1.0))
    assert decision == RetryDecision(retry=True, delay=20.0, reason="retry: status 429")


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    decision = idempotent_get(attempt=2, status=503, retry_after=0.1, rand=const(1.0))
    assert decision.delay == 1.0


def test_retry_after_above_max_retry_after_is_not_waited_for() -> None:
    assert idempotent_get(status=429, retry_after=30.0).retry
    decision = idempotent_get(status=429, retry_after=30.5)
    assert not decision.retry
    assert "Retry-After 30.5 s exceeds max_retry_after 30 s" in decision.reason


def test_gives_up_when_the_wait_would_pass_the_deadline() -> None:
    policy = RetryPolicy(deadline=10.0)
    assert idempotent_get(policy=policy, status=429, retry_after=4.0, elapsed=6.0).retry
    decision = idempotent_get(policy=policy, status=429, retry_after=4.0, elapsed=6.5)
    assert not decision.retry
    assert "deadline" in decision.reason


def test_rand_is_not_called_when_no_delay_is_needed() -> None:
    def boom() -> float:
        raise AssertionError("rand called")

    assert not idempotent_get(status=404, rand=boom).retry
    assert not idempotent_get(attempt=3, status=503, rand=boom).retry


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("attempt", 0),
        ("elapsed", -1.0),
        ("elapsed", math.nan),
        ("elapsed", math.inf),
        ("retry_after", -1.0),
        ("retry_after", math.nan),
        ("retry_after", math.inf),
        ("error_kind", "timed_out"),
        ("error_kind", "error"),
    ],
)
def test_decide_rejects_bad_inputs_naming_them(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        idempotent_get(**{field: value})


# -- decide: properties -------------------------------------------------------


@MANY
@given(decide_inputs())
def test_decide_never_retries_a_create_except_a_connection_that_never_opened(
    inputs: dict[str, object],
) -> None:
    inputs["idempotent"] = False
    if run_decide(inputs).retry:
        assert inputs["error_kind"] == "connect"
        assert inputs["status"] is None
        assert inputs["request_sent"] is not True


@MANY
@given(decide_inputs())
def test_decide_never_retries_past_max_attempts_or_deadline(inputs: dict[str, object]) -> None:
    decision = run_decide(inputs)
    policy = inputs["policy"]
    assert isinstance(policy, RetryPolicy)
    if decision.retry:
        assert isinstance(inputs["attempt"], int)
        assert isinstance(inputs["elapsed"], float)
        assert inputs["attempt"] < policy.max_attempts
        if policy.deadline is not None:
            assert inputs["elapsed"] + decision.delay <= policy.deadline
    else:
        assert decision.delay == 0.0
        assert decision.reason.startswith("no retry: ")


@MANY
@given(decide_inputs())
def test_decide_delay_respects_retry_after_and_backoff_bounds(inputs: dict[str, object]) -> None:
    decision = run_decide(inputs)
    if not decision.retry:
        return
    policy = inputs["policy"]
    attempt = inputs["attempt"]
    retry_after = inputs["retry_after"]
    assert isinstance(policy, RetryPolicy)
    assert isinstance(attempt, int)
    assert decision.reason.startswith("retry: ")
    if retry_after is None:
        assert 0.0 <= decision.delay <= ceiling(policy, attempt)
    else:
        assert isinstance(retry_after, float)
        assert retry_after <= policy.max_retry_after
        assert retry_after <= decision.delay <= max(retry_after, ceiling(policy, attempt))


@MANY
@given(decide_inputs())
def test_decide_never_retries_an_error_status_outside_retry_statuses(
    inputs: dict[str, object],
) -> None:
    status = inputs["status"]
    policy = inputs["policy"]
    assert isinstance(policy, RetryPolicy)
    if isinstance(status, int) and status >= 400 and status not in policy.retry_statuses:
        assert not run_decide(inputs).retry


@given(decide_inputs())
def test_decide_is_deterministic(inputs: dict[str, object]) -> None:
    assert run_decide(inputs) == run_decide(inputs)


# -- RetryBudget --------------------------------------------------------------


def test_budget_defaults_mirror_botocore_standard_mode() -> None:
    budget = RetryBudget()
    assert budget.available == budget.capacity == 500
    assert budget.cost("status") == budget.cost("disconnect") == budget.cost("error") == 5
    assert budget.cost("timeout") == 10


def test_budget_acquire_takes_the_cost_and_refuses_when_short() -> None:
    budget = RetryBudget(capacity=12)
    assert budget.acquire("timeout")
    assert budget.available == 2
    assert not budget.acquire("status")
    assert budget.available == 2  # a refusal takes nothing


def test_budget_refunds_one_on_a_first_try_success_and_the_retry_cost_after_a_retry() -> None:
    budget = RetryBudget()
    assert budget.acquire("timeout")
    assert budget.acquire("connect")
    assert budget.available == 485
    budget.release_success(None)
    assert budget.available == 486
    budget.release_success(budget.cost("timeout"))
    assert budget.available == 496


def test_budget_never_exceeds_capacity() -> None:
    budget = RetryBudget(capacity=10)
    budget.release_success(None)
    budget.release_success(50)
    assert budget.available == 10


def test_budget_refills_one_token_per_clean_call_after_an_outage() -> None:
    budget = RetryBudget()
    while budget.acquire("status"):
        pass
    assert budget.available == 0
    for _ in range(5):
        budget.release_success(None)
    assert budget.acquire("status")


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("capacity", 0, ValueError),
        ("retry_cost", -1, ValueError),
        ("timeout_retry_cost", 0, ValueError),
        ("success_refund", 0, ValueError),
        ("capacity", 1.5, TypeError),
        ("retry_cost", True, TypeError),
    ],
)
def test_budget_rejects_bad_arguments_naming_them(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=rf"^{field}: "):
        RetryBudget(**{field: value})  # type: ignore[arg-type]


def test_budget_rejects_a_negative_refund() -> None:
    with pytest.raises(ValueError, match=r"^retried_cost: "):
        RetryBudget().release_success(-5)


def always(status: int) -> Callable[[int], int]:
    return lambda _attempt: status


def call_until_done(
    policy: RetryPolicy,
    budget: RetryBudget,
    outcomes: Callable[[int], int],
    kind: str = "status",
) -> int:
    """Run one logical GET the way the transport does; return requests sent.

    ``outcomes(attempt)`` is the status the server answers that attempt with.
    """
    rng = random.Random(0)
    retried_cost: int | None = None
    attempt = 0
    while True:
        attempt += 1
        status = outcomes(attempt)
        if 200 <= status < 300:
            budget.release_success(retried_cost)
            return attempt
        decision = decide(
            policy=policy,
            attempt=attempt,
            method="GET",
            status=status,
            error_kind=None,
            retry_after=None,
            elapsed=0.0,
            rand=rng.random,
            idempotent=True,
            request_sent=None,
        )
        if decision.retry and budget.acquire(kind):
            retried_cost = budget.cost(kind)
            continue
        return attempt


def test_budget_arithmetic_holds_at_the_defaults_when_everything_answers_503() -> None:
    """10,000 calls send 10,100 requests: 100 retries of warm-up, then none."""
    budget = RetryBudget()
    sent = sum(call_until_done(RetryPolicy(), budget, always(503)) for _ in range(10_000))
    assert sent == 10_000 + 500 // 5
    assert budget.available == 0


@given(
    calls=st.integers(1, 2000),
    max_attempts=st.integers(1, 6),
    capacity=st.integers(1, 1000),
    retry_cost=st.integers(1, 20),
)
def test_budget_bounds_requests_when_every_call_fails(
    calls: int, max_attempts: int, capacity: int, retry_cost: int
) -> None:
    budget = RetryBudget(capacity=capacity, retry_cost=retry_cost)
    policy = RetryPolicy(max_attempts=max_attempts)
    sent = sum(call_until_done(policy, budget, always(503)) for _ in range(calls))
    warm_up = capacity // retry_cost
    assert sent <= calls + warm_up
    assert sent <= calls * max_attempts


@given(calls=st.integers(1, 2000))
def test_budget_defaults_keep_an_outage_under_one_and_a_half_requests_per_call(calls: int) -> None:
    budget = RetryBudget()
    sent = sum(call_until_done(RetryPolicy(), budget, always(503)) for _ in range(calls))
    assert sent <= 1.5 * calls + 100


@given(outcomes=st.lists(st.booleans(), min_size=1, max_size=3000))
def test_budget_caps_retries_of_failing_calls_by_first_try_successes(
    outcomes: list[bool],
) -> None:
    """Calls either succeed at once or fail every attempt; retries never pay off."""
    budget = RetryBudget()
    sent = 0
    for succeeds in outcomes:
        status = 200 if succeeds else 503
        sent += call_until_done(RetryPolicy(), budget, always(status))
    successes = sum(outcomes)
    assert sent <= len(outcomes) + (500 + successes) // 5
    assert 0 <= budget.available <= budget.capacity


def test_budget_does_not_ration_retries_that_succeed() -> None:
    budget = RetryBudget()
    sent = sum(call_until_done(RetryPolicy(), budget, lambda n: 503 if n == 1 else 200) for _ in range(1000))
    assert sent == 2000
    assert budget.available == 500


@given(
    ops=st.lists(
        st.one_of(
            st.sampled_from(["status", "timeout", "connect"]),
            st.none(),
            st.integers(0, 20),
        ),
        max_size=500,
    ),
    capacity=st.integers(1, 100),
)
def test_budget_available_stays_within_zero_and_capacity(ops: list[str | int | None], capacity: int) -> None:
    budget = RetryBudget(capacity=capacity)
    for op in ops:
        if isinstance(op, str):
            before = budget.available
            took = budget.acquire(op)
            assert took == (before >= budget.cost(op))
        else:
            budget.release_success(op)
        assert 0 <= budget.available <= capacity


# -- AdaptiveLimit ------------------------------------------------------------


def test_adaptive_limit_starts_at_the_limit() -> None:
    limit = AdaptiveLimit(8)
    assert limit.current == limit.limit == 8


def test_adaptive_limit_halves_once_per_burst_of_throttles() -> None:
    limit = AdaptiveLimit(16)
    assert limit.on_throttle()
    assert limit.current == 8
    for _ in range(20):
        assert not limit.on_throttle()
    assert limit.current == 8


def test_adaptive_limit_halves_again_after_an_increase() -> None:
    limit = AdaptiveLimit(16)
    limit.on_throttle()
    results = [limit.on_success() for _ in range(8)]
    assert results == [False] * 7 + [True]
    assert limit.current == 9
    assert limit.on_throttle()
    assert limit.current == 4


def test_adaptive_limit_halves_again_after_limit_successes_without_an_increase() -> None:
    limit = AdaptiveLimit(10)
    limit.on_throttle()  # 5
    # Interleaved throttles keep the run of successes short, so no increase;
    # 10 successes since the decrease re-arm the decrease anyway.
    for _ in range(9):
        limit.on_success()
        assert not limit.on_throttle()
    assert limit.current == 5
    limit.on_success()
    assert limit.on_throttle()
    assert limit.current == 2


def test_adaptive_limit_increases_after_current_consecutive_successes() -> None:
    limit = AdaptiveLimit(4)
    limit.on_throttle()  # 2
    assert [limit.on_success() for _ in range(2)] == [False, True]
    assert limit.current == 3
    assert [limit.on_success() for _ in range(3)] == [False, False, True]
    assert limit.current == 4
    assert not any(limit.on_success() for _ in range(100))
    assert limit.current == 4


def test_adaptive_limit_floor_is_one() -> None:
    limit = AdaptiveLimit(1)
    assert not limit.on_throttle()
    assert limit.current == 1
    assert not limit.on_success()
    assert limit.current == 1


def test_adaptive_limit_recovers_fully_from_the_floor() -> None:
    limit = AdaptiveLimit(64)
    for _ in range(10_000):
        # Throttles between successes block growth; every 64 successes re-arm a decrease.
        limit.on_throttle()
        if limit.current == 1:
            break
        limit.on_success()
    assert limit.current == 1
    for _ in range(sum(range(1, 64))):  # 1 + 2 + ... + 63 successes in a row
        limit.on_success()
    assert limit.current == 64


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-3, ValueError), (2.0, TypeError)])
def test_adaptive_limit_rejects_a_bad_limit(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^limit: "):
        AdaptiveLimit(value)  # type: ignore[arg-type]


@MANY
@given(limit=st.integers(1, 64), events=st.lists(st.booleans(), max_size=1000))
def test_adaptive_limit_stays_within_one_and_limit(limit: int, events: list[bool]) -> None:
    state = AdaptiveLimit(limit)
    for success in events:
        before = state.current
        changed = state.on_success() if success else state.on_throttle()
        after = state.current
        assert 1 <= after <= limit
        if success:
            assert after in (before, before + 1)
            assert changed == (after == before + 1)
        else:
            assert after in (before, max(1, before // 2))
            assert changed == (after < before)


@given(limit=st.integers(2, 64), burst=st.integers(1, 200))
def test_adaptive_limit_a_burst_of_throttles_costs_one_halving(limit: int, burst: int) -> None:
    state = AdaptiveLimit(limit)
    for _ in range(burst):
        state.on_throttle()
    assert state.current == limit // 2
