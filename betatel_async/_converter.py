"""The cattrs converters of betatel_async, and page decoding.

Strategy: decoding a page is the CPU cost of a scan, so the hot path uses a
converter built with ``detailed_validation=False`` (cattrs then generates plain
straight-line code). When that fails, the same data is structured again with a
detailed-validation converter, whose error carries the path of the bad field;
that path goes on :class:`~betatel_async.MalformedResponseError`. A good page
pays for speed only, a bad page for a precise message.

Never cattrs' global converter: other libraries in the same process may
register hooks on it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final, TypeVar

import cattrs
import orjson
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._errors import MalformedResponseError
from ._models import (
    ActivationType,
    Imsi,
    Inventory,
    InventoryStatus,
    Package,
    PackageStatus,
    PackageTemplate,
    PackageTemplateInfo,
    Page,
    Ref,
    Sim,
    SimStatus,
    TimeAllowance,
    TimeUnit,
)

__all__ = [
    "configure_converter",
    "converter",
    "decode_json",
    "decode_model",
    "decode_page",
    "unstructure",
]

T = TypeVar("T")

# In dependency order: a generated hook looks up its fields' hooks when it is made.
_MODELS: Final = (
    Imsi,
    Sim,
    Inventory,
    TimeAllowance,
    PackageTemplateInfo,
    Package,
    PackageTemplate,
)
_ID_OR_OBJECT: Final = (TimeAllowance, PackageTemplateInfo)
_LOCAL_FIELDS: Final[dict[type, tuple[str, ...]]] = {Package: ("reconciled",)}
_OPEN_ENUMS: Final = (SimStatus, InventoryStatus, PackageStatus, TimeUnit, ActivationType)


def _open_enum_hook(enum_cls: type[enum.StrEnum]) -> Callable[[Any, Any], str | None]:
    # A dict lookup costs the same for known and unknown values; a
    # try/except around enum_cls(value) is several times slower on a miss.
    members: dict[str, enum.StrEnum] = {m.value: m for m in enum_cls}

    def structure(value: Any, _: Any) -> str | None:
        if value is None:
            return None
        if type(value) is not str:
            raise TypeError(f"expected a string for {enum_cls.__name__}, got {type(value).__name__}")
        return members.get(value, value)

    return structure


def _structure_ref(value: Any, _: Any) -> Ref | None:
    if value is None:
        return None
    if type(value) is int:
        return Ref(id=value)
    if type(value) is dict:
        ident = value["id"]
        name = value.get("name")
        if type(ident) is not int:
            raise TypeError(f"expected an integer id, got {type(ident).__name__}")
        if name is not None and type(name) is not str:
            raise TypeError(f"expected a string name, got {type(name).__name__}")
        return Ref(id=ident, name=name)
    raise TypeError(f"expected an id or an {{id, name}} object, got {type(value).__name__}")


def _unstructure_ref(ref: Ref) -> int | dict[str, Any]:
    if ref.name is None:
        return ref.id
    return {"id": ref.id, "name": ref.name}


def _int_or(model: type[T], conv: cattrs.Converter) -> Callable[[Any, Any], T | int | None]:
    structure_model = conv.get_structure_hook(model)

    def structure(value: Any, _: Any) -> T | int | None:
        if value is None:
            return None
        if type(value) is int:
            return value
        if type(value) is dict:
            return structure_model(value, model)  # type: ignore[no-any-return]
        raise TypeError(f"expected an integer id or a {model.__name__} object, got {type(value).__name__}")

    return structure


def _strict_int(value: Any, _: Any) -> int:
    # cattrs' default int hook is int(value): it would accept "12", 1.9 and True.
    if type(value) is int:
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _strict_str(value: Any, _: Any) -> str:
    if type(value) is str:
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def configure_converter(conv: cattrs.Converter, *, detailed: bool) -> None:
    """Register every hook betatel_async needs on ``conv``.

    Registers:
        - ``int`` and ``str``: strict (no coercion of ``"12"`` or ``1.9``).
        - each open enum (``SimStatus | str | None`` and friends): known text to
          its member, unknown text kept as ``str``.
        - :class:`Ref` and ``Ref | None``: from a bare id or an ``{id, name}``
          object; unstructured back to the same shape.
        - ``PackageTemplateInfo | int | None`` and ``TimeAllowance | int | None``:
          an id or an object.
        - every model: generated dict hooks, unknown keys ignored, ``None``
          fields omitted on unstructure (absent in, absent out).

    Args:
        conv: A fresh converter.
        detailed: Build structure hooks with cattrs' detailed validation (slower,
            errors carry the path of the bad field).
    """
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(str, _strict_str)
    for enum_cls in _OPEN_ENUMS:
        hook = _open_enum_hook(enum_cls)
        conv.register_structure_hook_func(lambda t, e=enum_cls: t == (e | str | None), hook)  # type: ignore[misc]
        conv.register_structure_hook_func(lambda t, e=enum_cls: t == (e | str), hook)  # type: ignore[misc]
    conv.register_structure_hook(Ref, _structure_ref)
    conv.register_structure_hook_func(lambda t: t == (Ref | None), _structure_ref)
    conv.register_unstructure_hook(Ref, _unstructure_ref)
    for model in _MODELS:
        # Fields that are the SDK's own, not the API's: never read from or written to JSON.
        local: dict[str, Any] = {name: override(omit=True) for name in _LOCAL_FIELDS.get(model, ())}
        conv.register_structure_hook(
            model,
            make_dict_structure_fn(model, conv, _cattrs_detailed_validation=detailed, **local),
        )
        conv.register_unstructure_hook(
            model, make_dict_unstructure_fn(model, conv, _cattrs_omit_if_default=True, **local)
        )
        if model in _ID_OR_OBJECT:
            id_or_object = _int_or(model, conv)
            conv.register_structure_hook_func(lambda t, m=model: t == (m | int | None), id_or_object)  # type: ignore[misc]


def _make(detailed: bool) -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=detailed)
    configure_converter(conv, detailed=detailed)
    return conv


converter: Final = _make(detailed=False)
"""The converter of the hot path. Use :func:`unstructure` to turn models back into JSON-ready data."""

_detailed_converter: cattrs.Converter | None = None


def _detailed() -> cattrs.Converter:
    global _detailed_converter
    if _detailed_converter is None:
        _detailed_converter = _make(detailed=True)
    return _detailed_converter


def unstructure(obj: Any) -> Any:
    """Turn a model (or a list of them) back into the API's JSON shape."""
    return converter.unstructure(obj)


def _describe_failure(data: Any, cls: Any, prefix: str) -> tuple[str, str]:
    """Structure ``data`` again with detailed validation; return (json path, message)."""
    try:
        _detailed().structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - any failure is reported with its path
        messages = (
            cattrs.transform_error(exc, path=prefix) if isinstance(exc, cattrs.BaseValidationError) else []
        )
        if messages:
            first = messages[0]
            message, _, path = first.rpartition(" @ ")
            return path or prefix, message or first
        return prefix, f"{type(exc).__name__}: {exc}"
    return prefix, "could not be decoded"  # pragma: no cover - the fast path failed, so does this


def decode_json(body: bytes, *, method: str, path: str, status: int) -> Any:
    """Parse a JSON body, mapping a parse failure to MalformedResponseError."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponseError(
            f"response body is not JSON ({exc})", status=status, method=method, path=path
        ) from exc


def decode_model(data: Any, cls: type[T], *, method: str, path: str, status: int = 200) -> T:
    """Structure one JSON object into ``cls``, or raise MalformedResponseError naming the field."""
    try:
        return converter.structure(data, cls)
    except Exception as exc:
        json_path, message = _describe_failure(data, cls, "$")
        raise MalformedResponseError(
            f"unexpected value at {json_path}: {message}",
            json_path=json_path,
            status=status,
            method=method,
            path=path,
        ) from exc


def _envelope_int(body: dict[str, Any], key: str, *, method: str, path: str) -> int:
    value = body.get(key)
    if type(value) is not int or value < 0:
        raise MalformedResponseError(
            f"page field {key!r} must be a non-negative integer, got {value!r}",
            json_path=f"$.{key}",
            method=method,
            path=path,
        )
    return value


def decode_page(body: Any, key: str, cls: type[T], *, method: str, path: str) -> Page[T]:
    """Decode a list response ``{total, offset, count, <key>: [...]}`` into a Page.

    Args:
        body: The parsed JSON body.
        key: Name of the item array (``"sims"``, ``"inventories"``, ``"packages"``).
        cls: Model class of the items.
        method: For error messages.
        path: For error messages.

    Raises:
        MalformedResponseError: The envelope or an item is not as documented; the
            error's ``json_path`` names the bad field (``$.sims[3].iccid``).
    """
    if type(body) is not dict:
        raise MalformedResponseError(
            f"list response must be a JSON object, got {type(body).__name__}",
            method=method,
            path=path,
        )
    items = body.get(key)
    if type(items) is not list:
        raise MalformedResponseError(
            f"list response has no {key!r} array", json_path=f"$.{key}", method=method, path=path
        )
    total = _envelope_int(body, "total", method=method, path=path)
    offset = _envelope_int(body, "offset", method=method, path=path)
    # ``count`` is documented, but a page that omits it still says enough.
    count = body.get("count", len(items))
    if type(count) is not int:
        count = len(items)
    try:
        structure = converter.get_structure_hook(cls)
        decoded = [structure(item, cls) for item in items]
    except Exception as exc:
        json_path, message = _describe_failure(items, list[cls], f"$.{key}")  # type: ignore[valid-type]
        raise MalformedResponseError(
            f"unexpected value at {json_path}: {message}",
            json_path=json_path,
            method=method,
            path=path,
        ) from exc
    return Page(total=total, offset=offset, count=count, items=decoded)
