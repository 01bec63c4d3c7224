"""The one boundary where aiohttp's exceptions become the SDK's."""

from __future__ import annotations

import inspect

import aiohttp
import pytest

import betatel_async as bt
from betatel_async._transport import map_aiohttp_error

CLIENT_EXCEPTIONS = sorted(
    (
        obj
        for name in aiohttp.__all__
        if inspect.isclass(obj := getattr(aiohttp, name))
        and issubclass(obj, aiohttp.ClientError | TimeoutError)
        and not issubclass(obj, Warning)
    ),
    key=lambda c: c.__name__,
)


def test_the_list_of_aiohttp_exceptions_is_not_empty() -> None:
    assert len(CLIENT_EXCEPTIONS) > 15


@pytest.mark.parametrize("cls", CLIENT_EXCEPTIONS, ids=lambda c: c.__name__)
def test_every_aiohttp_client_exception_maps_to_an_sdk_error(cls: type[BaseException]) -> None:
    exc = cls.__new__(cls)  # constructors differ; the mapping must not depend on them
    mapped, kind = map_aiohttp_error(exc, method="GET", path="/p")
    assert isinstance(mapped, bt.APIConnectionError)
    assert kind in {"connect", "timeout", "disconnect", "truncated"}
    assert mapped.kind == kind or (kind == "connect" and isinstance(mapped, bt.APITimeoutError))
    assert str(mapped).endswith("(GET /p)")


@pytest.mark.parametrize(
    ("exc", "cls", "kind"),
    [
        (aiohttp.ConnectionTimeoutError(), bt.APITimeoutError, "connect"),
        (aiohttp.SocketTimeoutError(), bt.APITimeoutError, "timeout"),
        (TimeoutError(), bt.APITimeoutError, "timeout"),
        (aiohttp.ServerDisconnectedError(), bt.APIConnectionError, "disconnect"),
        (aiohttp.ClientPayloadError("cut"), bt.APIConnectionError, "truncated"),
        (aiohttp.ClientOSError(104, "reset"), bt.APIConnectionError, "disconnect"),
        (ConnectionResetError(), bt.APIConnectionError, "disconnect"),
    ],
)
def test_the_most_specific_mapping_wins(exc: BaseException, cls: type[bt.APIError], kind: str) -> None:
    mapped, got_kind = map_aiohttp_error(exc, method="POST", path="/x")
    assert type(mapped) is cls
    assert got_kind == kind
