"""Argument checks, run before any request is sent.

Every failure names the argument as the caller spelled it. Wrong types raise
[`InvalidArgumentTypeError`][betatel_async.InvalidArgumentTypeError] (a ``TypeError``), wrong values
[`InvalidArgumentError`][betatel_async.InvalidArgumentError] (a ``ValueError``). Messages never echo a
credential's value.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Final, cast
from urllib.parse import quote, unquote

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
    """``None`` or an ICCID (a filter), as `check_iccid()`."""
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


# RFC 3986 path characters: unreserved, sub-delims, ":" and "@", percent-escapes, and "/".
_URL_PATH: Final = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")
# RFC 9110 field-name: a token.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A field value may hold tabs; no other control character (CR and LF would end the header).
_FIELD_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

CREDENTIAL_HEADERS: Final = frozenset({"x-api-key", "x-user-id"})
"""The SDK's own auth headers (lower case): never set by a caller's headers."""

_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding"})


def check_api_path(name: str, value: object) -> str:
    """A path below the base URL, as sent: ``/api/v1/esim/...``, already percent-encoded.

    Refused rather than "fixed", since each would reach another resource or
    host: no leading ``/`` or a leading ``//`` (another host), a scheme, a
    ``.`` or ``..`` segment (escaped or not), ``?`` or ``#`` (the query goes in
    ``params``), an escaped ``/`` or ``\\``, CR, LF or any character that is
    not a URL path's (percent-encode it).
    """
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(name, f"expected a string path, got {type(value).__name__}")
    if not value.startswith("/"):
        raise InvalidArgumentError(
            name, "must start with '/': a path below the base URL, such as /api/v1/esim/countries"
        )
    if value.startswith("//"):
        raise InvalidArgumentError(name, "must not start with '//' (it would name another host)")
    if _CONTROL.search(value):
        raise InvalidArgumentError(name, "must not contain CR, LF or other control characters")
    if "?" in value or "#" in value:
        raise InvalidArgumentError(name, "must not contain '?' or '#': pass the query as params=")
    if not _URL_PATH.fullmatch(value):
        raise InvalidArgumentError(
            name, "must hold only URL path characters: percent-encode the others (urllib.parse.quote)"
        )
    for segment in value.split("/"):
        decoded = unquote(segment)
        if decoded in {".", ".."}:
            raise InvalidArgumentError(name, "must not contain a '.' or '..' segment")
        if decoded != segment and ("/" in decoded or "\\" in decoded or _CONTROL.search(decoded)):
            raise InvalidArgumentError(
                name, "must not contain an escaped '/', '\\' or control character (%2F, %5C, %0D ...)"
            )
    return value


def check_headers(name: str, value: object) -> dict[str, str]:
    """Extra request headers: names that are tokens, ASCII values without CR or LF.

    The SDK's auth headers (``x-api-key``, ``x-user-id``) and the framing
    headers aiohttp computes (``Content-Length``, ``Transfer-Encoding``) are
    refused, in any letter case, as is a name given twice. Messages name the
    header, never echo its value (it may be a secret).
    """
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(
            name, f"expected a mapping of header names to values, got {type(value).__name__}"
        )
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for key, item in value.items():
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            raise InvalidArgumentError(name, f"{key!r} is not a valid header name")
        lower = key.lower()
        if lower in CREDENTIAL_HEADERS:
            raise InvalidArgumentError(
                name, f"must not set {key}: the client sends its own credentials (api_key, user_id)"
            )
        if lower in _FRAMING_HEADERS:
            raise InvalidArgumentError(name, f"must not set {key}: aiohttp computes it from the body")
        if lower in seen:
            raise InvalidArgumentError(name, f"names {key} twice (header names ignore letter case)")
        seen.add(lower)
        if not isinstance(item, str):
            raise InvalidArgumentTypeError(
                name, f"the value of {key} must be a string, got {type(item).__name__}"
            )
        if _FIELD_CONTROL.search(item):
            raise InvalidArgumentError(
                name, f"the value of {key} must not contain CR, LF or other control characters"
            )
        if not item.isascii():
            raise InvalidArgumentError(name, f"the value of {key} must be ASCII")
        headers[key] = _text(item)
    return headers


def check_query(name: str, value: object, *, floats: bool = False) -> dict[str, str | int | float]:
    """Query parameters: string names, values that are strings without control characters or ints
    (and floats with ``floats``); a bool is refused (``true`` or ``True`` or ``1``: say which)."""
    if not isinstance(value, Mapping):
        raise InvalidArgumentTypeError(
            name, f"expected a mapping of names to values, got {type(value).__name__}"
        )
    query: dict[str, str | int | float] = {}
    kinds = (str, int, float) if floats else (str, int)
    for key, item in value.items():
        if not isinstance(key, str) or not key or _CONTROL.search(key):
            raise InvalidArgumentError(name, f"{key!r} is not a valid parameter name")
        if isinstance(item, bool) or not isinstance(item, kinds):
            expected = "a string, int or float" if floats else "a string or int"
            raise InvalidArgumentTypeError(
                name, f"the value of {key!r} must be {expected}, got {type(item).__name__}"
            )
        if isinstance(item, str):
            if _CONTROL.search(item):
                raise InvalidArgumentError(
                    name, f"the value of {key!r} must not contain CR, LF or other control characters"
                )
            item = _text(item)
        query[key] = item
    return query


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


def loopback_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The loopback IP address ``host`` spells, or None for any other host or a name.

    An IPv4-mapped address (``::ffff:127.0.0.1``) is returned as its IPv4
    address: it reaches 127.0.0.1, and Python 3.13's ``is_loopback`` says so
    where 3.11 and 3.12 say it is not, so it is unwrapped here to give one
    answer on every version.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address if address.is_loopback else None


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``, ``::ffff:127.x.y.z``)."""
    return host.lower() in {"localhost", "localhost."} or loopback_ip(host) is not None


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
