"""Argument checks, run before any request is sent.

Every failure names the argument as the caller spelled it. Wrong types raise
:class:`InvalidArgumentTypeError` (a ``TypeError``), wrong values
:class:`InvalidArgumentError` (a ``ValueError``). Messages never echo a
credential's value.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Collection, Sequence
from typing import Final, cast
from urllib.parse import quote

from yarl import URL

from ._errors import InvalidArgumentError, InvalidArgumentTypeError

MAX_PAGE_SIZE: Final = 1000
"""The largest ``count`` the SDK sends. The API documents no maximum; a server
that caps pages lower is handled by the scan (short pages are completed)."""

INT64_MAX: Final = 2**63 - 1
"""The largest integer the SDK sends: JSON encoders (and the API's 64-bit
fields) go no further."""

_ICCID: Final = re.compile(r"[0-9]{18,22}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def check_int(name: str, value: object, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """An integer (not a bool) within bounds: by default 0 to ``2**63 - 1``."""
    if type(value) is not int:
        raise InvalidArgumentTypeError(name, f"expected an int, got {type(value).__name__}")
    if value < minimum:
        raise InvalidArgumentError(name, f"must be >= {minimum}, got {value}")
    if value > maximum:
        raise InvalidArgumentError(name, f"must be <= {maximum}, got {value}")
    return value


def check_optional_id(name: str, value: object) -> int | None:
    """``None`` or a non-negative integer id (a filter)."""
    if value is None:
        return None
    return check_int(name, value, minimum=0)


def check_iccid(name: str, value: object) -> str:
    """An ICCID: 18 to 22 decimal digits.

    No Luhn check: the API's own documented example ICCID fails one, so a
    real ICCID may too.
    """
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(name, f"expected an ICCID string, got {type(value).__name__}")
    if not _ICCID.fullmatch(value):
        raise InvalidArgumentError(name, "must be an ICCID of 18 to 22 decimal digits")
    return value


def check_optional_iccid(name: str, value: object) -> str | None:
    """``None`` or an ICCID (a filter), as :func:`check_iccid`."""
    return None if value is None else check_iccid(name, value)


def check_choice(name: str, value: object, choices: Collection[str]) -> str | None:
    """``None`` or one of ``choices`` (exact text)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(name, f"expected a string, got {type(value).__name__}")
    if value not in choices:
        raise InvalidArgumentError(name, f"must be one of {', '.join(sorted(choices))}; got {value!r}")
    return _text(value)


def _text(value: str) -> str:
    """The text of a string, whatever its class: what goes on the wire.

    ``str()`` of a ``(str, Enum)`` member is ``"Cls.MEMBER"``, not its value;
    a ``StrEnum`` member or a plain ``str`` subclass gives its text.
    """
    if isinstance(value, enum.Enum):
        return str.__str__(value.value)
    return str.__str__(value)


def path_segment(name: str, value: object) -> str:
    """A non-empty id made safe to put in a URL path, percent-encoded.

    ``/``, ``.``, ``..`` and control characters are refused rather than
    encoded: they would address a different resource.
    """
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(name, f"expected a string id, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(name, "must not be empty")
    if "/" in value or "\\" in value:
        raise InvalidArgumentError(name, "must not contain '/' or '\\'")
    if value in {".", ".."}:
        raise InvalidArgumentError(name, "must not be '.' or '..'")
    if _CONTROL.search(value):
        raise InvalidArgumentError(name, "must not contain control characters")
    return quote(value, safe="")


def check_credential(name: str, value: object) -> str:
    """A header-safe, non-empty credential. The value is never echoed."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(name, "must not be empty")
    if _CONTROL.search(value):
        raise InvalidArgumentError(name, "must not contain CR, LF or other control characters")
    if not value.isascii():
        raise InvalidArgumentError(name, "must be ASCII (it is sent as an HTTP header)")
    return value


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower() in {"localhost", "localhost."}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(name: str, value: object, *, allow_insecure: bool) -> URL:
    """An absolute https URL, or http to a loopback host (or with ``allow_insecure``)."""
    if not isinstance(value, str | URL):
        raise InvalidArgumentTypeError(name, f"expected a URL string, got {type(value).__name__}")
    try:
        url = URL(str(value))
    except ValueError as exc:
        raise InvalidArgumentError(name, f"not a valid URL ({exc})") from None
    if not url.is_absolute() or not url.host:
        raise InvalidArgumentError(name, "must be an absolute URL such as https://esim.betatel.com")
    if url.scheme not in {"http", "https"}:
        raise InvalidArgumentError(name, f"scheme must be https (or http), got {url.scheme!r}")
    if url.user or url.password:
        raise InvalidArgumentError(name, "must not carry credentials")
    if url.query_string or url.fragment:
        raise InvalidArgumentError(name, "must not carry a query string or fragment")
    if url.scheme == "http" and not allow_insecure and not is_loopback_host(url.host):
        raise InvalidArgumentError(
            name,
            "plain http would send the API key unencrypted; use https, "
            "or pass allow_insecure_http=True to accept the risk",
        )
    return url


def check_positive_float(name: str, value: object, *, allow_none: bool = False) -> float | None:
    """A positive number of seconds (or ``None`` where allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentTypeError(name, f"expected a number of seconds, got {type(value).__name__}")
    if not value > 0 or value == float("inf"):
        raise InvalidArgumentError(name, f"must be a positive finite number of seconds, got {value}")
    return float(value)


_ALPHA3: Final = re.compile(r"[A-Z]{3}")


def check_text(name: str, value: object) -> str:
    """A non-blank string."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError(name, "must not be empty")
    return value


def check_country_codes(name: str, value: object) -> list[str]:
    """A non-empty list of distinct ISO 3166-1 alpha-3 codes, upper case (``["FRA", "DEU"]``).

    Only the form is checked (three letters A-Z): which countries exist is the
    API's to say (``client.countries``). A bare string is refused rather than
    read as a sequence of letters.
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidArgumentTypeError(name, f"expected a list of alpha-3 codes, got {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(name, "must name at least one country")
    seen: set[str] = set()
    for code in value:
        if not isinstance(code, str) or not _ALPHA3.fullmatch(code):
            raise InvalidArgumentError(
                name, f"must hold ISO 3166-1 alpha-3 codes such as 'FRA', got {code!r}"
            )
        if code in seen:
            raise InvalidArgumentError(name, f"names {code!r} twice")
        seen.add(code)
    return [_text(code) for code in value]


def check_given_choice(name: str, value: object, choices: Collection[str]) -> str:
    """One of ``choices`` (exact text; a ``StrEnum`` member works); ``None`` is refused."""
    if value is None:
        raise InvalidArgumentError(name, f"must be one of {', '.join(sorted(choices))}; got None")
    return cast(str, check_choice(name, value, choices))  # not None: refused above
