"""Configuration of the sandbox: data size and seed, latency, page shaping and faults.

Both classes are mutable attrs classes whose validators also run on assignment,
so a test may retune a running sandbox (``sandbox.config.latency = 0.05``) and
still get a ``ValueError`` naming the field for a bad value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

import attrs
from attrs import validators as v

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_USER_ID",
    "FAULT_KINDS",
    "ActionResponse",
    "FaultConfig",
    "QrResponse",
    "SandboxConfig",
    "SimShape",
]

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_USER_ID = "sandbox-user"

SimShape = Literal["objects", "ids", "mixed"]
ActionResponse = Literal["no_content", "bool"]
QrResponse = Literal["png", "empty", "html"]

#: The fault kinds with a name. Any other HTTP error status written as three
#: digits (``"408"``, ``"507"``) is accepted too and answered as that status.
FAULT_KINDS = (
    "429",
    "500",
    "502",
    "503",
    "504",
    "reset",
    "truncated",
    "malformed",
    "slow",
    "commit_drop",
)
#: A script entry meaning "answer this request normally".
NO_FAULT = "ok"

_ERROR_STATUSES = range(400, 600)


def is_status_fault(kind: str) -> bool:
    """Whether a fault kind is answered with an HTTP error status (``"400"``..``"599"``)."""
    return len(kind) == 3 and kind.isascii() and kind.isdigit() and int(kind) in _ERROR_STATUSES


def _check_kind(name: str, kind: object) -> None:
    if not isinstance(kind, str) or not (kind in FAULT_KINDS or is_status_fault(kind)):
        raise ValueError(
            f"{name} holds an unknown fault kind {kind!r}: expected one of "
            f"{', '.join(FAULT_KINDS)} or an HTTP error status such as '408'"
        )


def _check_kinds(_instance: object, attribute: attrs.Attribute[object], value: object) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"{attribute.name} must be a dict of fault kind to weight")
    for kind, weight in value.items():
        _check_kind(attribute.name, kind)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
            raise ValueError(f"{attribute.name}[{kind!r}] must be a weight >= 0, got {weight!r}")


def _check_script(_instance: object, attribute: attrs.Attribute[object], value: object) -> None:
    if not isinstance(value, list):
        raise TypeError(f"{attribute.name} must be a list of fault kinds")
    for kind in value:
        if kind != NO_FAULT:
            _check_kind(attribute.name, kind)


def _default_kinds() -> dict[str, float]:
    # Only faults a correct client recovers from by itself: "slow" stalls until
    # the client's timeout, "commit_drop" leaves a create's outcome unknown and
    # "malformed" is not retryable, so a random-fault benchmark would fail on them.
    return dict.fromkeys(("429", "500", "502", "503", "504", "reset", "truncated"), 1.0)


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # ``not value >= 0`` also refuses NaN.
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")


def _none_or_non_negative(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _non_negative(instance, attribute, value)


def _int_at_least(minimum: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{attribute.name} must be an int >= {minimum}, got {value!r}")

    return check


@attrs.define
class FaultConfig:
    """Which API requests fail, and how.

    Faults apply only to routes under ``/api/v1/esim`` (never to
    ``/api/v1/status``), before authentication, as a proxy in front of the real
    API would. Each request takes the next entry of ``script`` if there is one;
    otherwise it is faulted with probability ``rate``, the kind drawn by weight
    from ``kinds``. The draws come from a ``random.Random(config.seed)`` owned by
    the sandbox, so a sequential run is reproducible.

    Kinds:
        ``"429"``, ``"500"``, ``"502"``, ``"503"``, ``"504"`` (or any other
        ``"4xx"``/``"5xx"``): that status with a JSON error body; 429 carries
        ``Retry-After: <retry_after>`` unless ``retry_after`` is None.
        ``"reset"``: the connection is aborted (TCP RST) without a response;
        the client sees "connection reset by peer".
        ``"truncated"``: the real status and headers with the full
        ``Content-Length``, then half the body, then the connection closes
        (a response without a body is just not sent).
        ``"malformed"``: a complete response whose body is cut in half, so it is
        not valid JSON (a bodiless response becomes a 200 with body ``{``).
        ``"slow"``: sleep ``slow_seconds`` first, then answer normally.
        ``"commit_drop"``: handle the request (a POST changes state), then close
        the connection without answering.

    Note that aiohttp's client silently sends an idempotent request (GET) once
    more after its connection is dropped, so one ``"reset"`` or
    ``"commit_drop"`` on a GET never reaches code above aiohttp: script two in
    a row to see the GET fail. POSTs are not re-sent.

    Attributes:
        rate: Probability in [0, 1] that a request not covered by ``script``
            is faulted. Default 0.
        kinds: Weight of each kind in random faults. Default: 429, 500, 502,
            503, 504, reset and truncated, equally.
        script: Kinds applied to the next API requests in order, one each,
            consumed as they are used; ``"ok"`` lets a request through.
            Tests use it for exact scenarios: ``script=["503", "ok", "reset"]``.
        retry_after: Seconds sent in the ``Retry-After`` header of a 429, or
            None for no header. Default 0 (sent as ``"0"``).
        slow_seconds: How long a ``"slow"`` request sleeps. Default 30 s, past
            any sensible client timeout.
        ignore_offset: Listings answer every request with the items at
            offset 0, their envelope honestly saying ``"offset": 0``, as a
            server that ignores the ``offset`` parameter would (a negative
            offset is still refused). Default False.
    """

    rate: float = attrs.field(default=0.0, validator=[_non_negative, v.le(1)])
    kinds: dict[str, float] = attrs.field(factory=_default_kinds, validator=_check_kinds)
    script: list[str] = attrs.field(factory=list, validator=_check_script)
    retry_after: float | None = attrs.field(default=0.0, validator=_none_or_non_negative)
    slow_seconds: float = attrs.field(default=30.0, validator=_non_negative)
    ignore_offset: bool = attrs.field(default=False, validator=v.instance_of(bool))


@attrs.define
class SandboxConfig:
    """Everything that shapes a sandbox: its data, its timing, its pages, its faults.

    ``sims`` and ``seed`` are read once, when the data is generated; every
    other field is read on each request, so tests may change it on a running
    sandbox.

    Attributes:
        sims: Number of SIMs to generate (about one package per four SIMs, and
            ``sims // 5000 + 3`` companies). Default 1000.
        seed: Seed of the generated data and of the fault and latency draws.
        latency: Seconds from a request's arrival to its answer (the answer
            is prepared at once and held back until then). Default 0.
        latency_jitter: Extra random seconds, uniform in [0, latency_jitter),
            added to ``latency``; makes concurrent pages finish out of order.
        page_cap: At most this many items per page whatever ``count`` asks,
            as servers that cap page size do (``count`` in the response says
            how many came). None (default) for no cap.
        max_count: Largest ``count`` accepted; a larger one is a 400. Default 1000.
        sim_shape: How SIM list items carry ``group``, ``inventory`` and
            ``company``: ``"objects"`` (``{id, name}``, the seed document),
            ``"ids"`` (bare ints, API 1.0.4's partial SIM) or ``"mixed"``
            (alternating by position in the listing). ``GET
            /sim-registries/{iccid}`` always answers objects.
        action_response: What activate and terminate answer on success:
            ``"no_content"`` (204) or ``"bool"`` (200 with JSON ``true``).
        qr_response: What ``GET /euicc-profiles/{iccid}/qrcode`` answers for a
            known SIM: ``"png"`` (default: the QR image, ``image/png``),
            ``"empty"`` (200, ``image/png``, no body) or ``"html"`` (200, a
            ``text/html`` page): the last two are answers a client must refuse.
        faults: Fault injection, see `FaultConfig`.
        api_key: The ``x-api-key`` the sandbox accepts.
        user_id: The ``x-user-id`` the sandbox accepts.
    """

    sims: int = attrs.field(default=1000, validator=_int_at_least(0))
    seed: int = attrs.field(default=0, validator=v.instance_of(int))
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    latency_jitter: float = attrs.field(default=0.0, validator=_non_negative)
    page_cap: int | None = attrs.field(default=None, validator=v.optional(_int_at_least(1)))
    max_count: int = attrs.field(default=1000, validator=_int_at_least(1))
    sim_shape: SimShape = attrs.field(default="objects", validator=v.in_(get_args(SimShape)))
    action_response: ActionResponse = attrs.field(
        default="no_content", validator=v.in_(get_args(ActionResponse))
    )
    qr_response: QrResponse = attrs.field(default="png", validator=v.in_(get_args(QrResponse)))
    faults: FaultConfig = attrs.field(factory=FaultConfig, validator=v.instance_of(FaultConfig))
    # Not a secret (it is documented), but kept out of repr as every key is.
    api_key: str = attrs.field(default=DEFAULT_API_KEY, repr=False, validator=v.instance_of(str))
    user_id: str = attrs.field(default=DEFAULT_USER_ID, validator=v.instance_of(str))
