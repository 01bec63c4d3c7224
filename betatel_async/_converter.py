"""The cattrs converters of betatel_async, and page decoding.

Strategy: decoding a page is the CPU cost of a scan, so the hot path does as
little as a hand-written loop over dicts would, and a bad page pays for a
precise message afterwards.

- The hot-path converter (`converter`) structures every model with a
  function generated for it here (`make_fast_structure_fn()`): one
  straight-line function per class that reads each key once, checks each
  value's exact type (``type(v) is int``: no coercion, no ``bool`` for an
  ``int``), looks open enum values up in a dict, and builds the instance with
  ``object.__new__`` plus slot stores. That last part matters most: calling a
  class with keyword arguments makes CPython 3.11 pack them into a dict for
  ``__init__``, about 1 µs for an 11-field [`Sim`][betatel_async.Sim] against
  0.2 µs for the stores. It is done only for classes whose ``__init__`` is
  attrs' own and does nothing else (no validators, converters, ``on_setattr``
  hooks, pre/post-init, not frozen); any other class is called normally.
- When the fast path fails, the same data is structured again by a second
  converter built with cattrs' detailed validation and the same strictness;
  its error carries the path of the bad field, which goes on
  [`MalformedResponseError`][betatel_async.MalformedResponseError] (``$.sims[3].imsis[0].imsi``).
  The two converters accept exactly the same inputs and build equal objects
  (a Hypothesis test holds them to it).

Never cattrs' global converter: other libraries in the same process may
register hooks on it.
"""

from __future__ import annotations

import enum
import functools
import linecache
import operator
import types
from collections.abc import Callable
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
import orjson
from cattrs.cols import list_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception

from ._errors import MalformedResponseError
from ._models import (
    ActivationType,
    ApiStatus,
    Country,
    DataProfile,
    EuiccProfile,
    EuiccProfileState,
    Imsi,
    Inventory,
    InventoryStatus,
    Package,
    PackageStatus,
    PackageTemplate,
    PackageTemplateInfo,
    PackageTemplateStatus,
    Page,
    PcrProfile,
    ProfileReusePolicy,
    Ref,
    ReuseType,
    ServiceProfile,
    ServiceState,
    Sim,
    SimStatus,
    Throttling,
    TimeAllowance,
    TimeUnit,
    Wallet,
    WalletMode,
    WalletOwner,
    WalletType,
)

__all__ = [
    "check_page",
    "configure_converter",
    "converter",
    "decode_json",
    "decode_model",
    "decode_page",
    "make_fast_list_structure_fn",
    "make_fast_structure_fn",
    "structure_page",
    "unstructure",
]

T = TypeVar("T")

StructureFn = Callable[..., Any]
"""A structure hook: ``fn(value, type)``; the generated ones also take ``fn(value)``."""

# In dependency order: a hook looks up its fields' hooks when it is made.
_MODELS: Final = (
    Imsi,
    Sim,
    Inventory,
    TimeAllowance,
    PackageTemplateInfo,
    PackageTemplate,
    Package,
    Country,
    ProfileReusePolicy,
    EuiccProfile,
    DataProfile,
    ServiceProfile,
    WalletOwner,
    Wallet,
    PcrProfile,
    ApiStatus,
)
_LOCAL_FIELDS: Final[dict[type, tuple[str, ...]]] = {Package: ("reconciled",)}
_OPEN_ENUMS: Final = (
    SimStatus,
    InventoryStatus,
    PackageStatus,
    TimeUnit,
    ActivationType,
    PackageTemplateStatus,
    EuiccProfileState,
    ReuseType,
    ServiceState,
    Throttling,
    WalletMode,
    WalletType,
)
# A package's template as an object: the full template or the create response's info.
_TEMPLATE_OBJECT: Final = PackageTemplate | PackageTemplateInfo
# Keys PackageTemplate requires and PackageTemplateInfo does not have: an object
# with any of them is a full template (and must have all), any other is the info.
# Told apart by keys, not by trying one class then the other: a full template
# missing one field would otherwise decode as the info, dropping twelve fields.
_FULL_TEMPLATE_KEYS: Final = frozenset(
    a.name for a in attrs.fields(PackageTemplate) if a.default is attrs.NOTHING
) - frozenset(a.name for a in attrs.fields(PackageTemplateInfo))
# Models the API may send wrapped in a one-key object (an older documented shape):
# model -> the key. ``decode_model`` unwraps them.
_WRAPPERS: Final[dict[type, str]] = {EuiccProfile: "profile"}
# value -> member of each open enum. A dict lookup costs the same for known and
# unknown values; a try/except around enum_cls(value) is several times slower on a miss.
_ENUM_MEMBERS: Final[dict[type, dict[str, enum.StrEnum]]] = {
    enum_cls: {member.value: member for member in enum_cls} for enum_cls in _OPEN_ENUMS
}
_NONE_TYPE: Final = type(None)


def _open_enum_hook(enum_cls: type[enum.StrEnum], *, nullable: bool) -> Callable[[Any, Any], str | None]:
    members = _ENUM_MEMBERS[enum_cls]

    def structure(value: Any, _: Any = None) -> str | None:
        if value is None and nullable:
            return None
        if type(value) is not str:
            raise TypeError(f"expected a string for {enum_cls.__name__}, got {type(value).__name__}")
        return members.get(value, value)

    return structure


def _wrong_type(expected: str, value: Any) -> TypeError:
    return TypeError(f"expected {expected}, got {type(value).__name__}")


def _not_an_object(cls: type, value: Any) -> TypeError:
    return TypeError(f"expected a JSON object for {cls.__name__}, got {type(value).__name__}")


def _structure_ref(value: Any, _: Any = None) -> Ref | None:
    """``Ref`` from a bare id or an ``{id, name}`` object (the hot path's hook)."""
    if value is None:
        return None
    new = object.__new__
    if type(value) is int:
        ref: Ref = new(Ref)
        ref.id = value
        ref.name = None
        return ref
    if type(value) is dict:
        ident = value["id"]
        name = value["name"]
        if type(ident) is not int:
            raise _wrong_type("an integer id", ident)
        if type(name) is not str:
            raise _wrong_type("a string name", name)
        ref = new(Ref)
        ref.id = ident
        ref.name = name
        return ref
    raise _wrong_type("an id or an {id, name} object", value)


@attrs.define(slots=True, kw_only=True)
class _RefObject:
    """The object form of a [`Ref`][betatel_async.Ref], where both keys are required. Private."""

    id: int
    name: str


def _detailed_ref_hook(structure_object: StructureFn) -> Callable[[Any, Any], Ref | None]:
    # The object form goes through cattrs' detailed hook of _RefObject, so a bad
    # or missing id or name is reported at ``...group.id``, not at ``...group``.
    def structure(value: Any, _: Any = None) -> Ref | None:
        if value is None:
            return None
        if type(value) is int:
            return Ref(id=value)
        if type(value) is dict:
            ref: _RefObject = structure_object(value, _RefObject)
            return Ref(id=ref.id, name=ref.name)
        raise _wrong_type("an id or an {id, name} object", value)

    return structure


def _unstructure_ref(ref: Ref) -> int | dict[str, Any]:
    if ref.name is None:
        return ref.id
    return {"id": ref.id, "name": ref.name}


def _template_object_hook(conv: cattrs.Converter) -> StructureFn:
    """``PackageTemplate | PackageTemplateInfo``: the shape is told by its keys (``_FULL_TEMPLATE_KEYS``)."""
    full = conv.get_structure_hook(PackageTemplate)
    info = conv.get_structure_hook(PackageTemplateInfo)

    def structure(value: Any, _: Any = None) -> PackageTemplate | PackageTemplateInfo:
        if type(value) is not dict:
            raise _wrong_type("a package template object", value)
        if _FULL_TEMPLATE_KEYS.isdisjoint(value):
            return info(value, PackageTemplateInfo)  # type: ignore[no-any-return]
        return full(value, PackageTemplate)  # type: ignore[no-any-return]

    return structure


def _template_or_id_hook(conv: cattrs.Converter) -> StructureFn:
    """``PackageTemplate | PackageTemplateInfo | int``: an id, or an object of either shape."""
    structure_object = conv.get_structure_hook(_TEMPLATE_OBJECT)

    def structure(value: Any, _: Any = None) -> PackageTemplate | PackageTemplateInfo | int:
        if type(value) is int:
            return value
        if type(value) is not dict:
            raise _wrong_type("a package template id or object", value)
        return structure_object(value, _TEMPLATE_OBJECT)  # type: ignore[no-any-return]

    return structure


def _strict_int(value: Any, _: Any = None) -> int:
    # cattrs' default int hook is int(value): it would accept "12", 1.9 and True.
    if type(value) is int:
        return value
    raise _wrong_type("an integer", value)


def _strict_str(value: Any, _: Any = None) -> str:
    if type(value) is str:
        return value
    raise _wrong_type("a string", value)


def _strict_bool(value: Any, _: Any = None) -> bool:
    if type(value) is bool:
        return value
    raise _wrong_type("a boolean", value)


def _objects_only(cls: type[T], hook: StructureFn) -> Callable[[Any, Any], T]:
    # cattrs' dict hooks read keys with ``o[key]`` and ``key in o``, so a list
    # or a string would pass as an object with every optional field absent.
    def structure(value: Any, _: Any = None) -> T:
        if type(value) is not dict:
            raise _not_an_object(cls, value)
        return hook(value, cls)  # type: ignore[no-any-return]

    return structure


def _lists_only(list_type: Any, conv: cattrs.BaseConverter) -> StructureFn:
    # cattrs turns any iterable into a list: a string would become a list of characters.
    structure_list = list_structure_factory(list_type, conv)

    def structure(value: Any, _: Any = None) -> list[Any]:
        if type(value) is not list:
            raise _wrong_type("an array", value)
        return structure_list(value, list_type)  # type: ignore[no-any-return]

    return structure


# -- generated hot-path structure functions --------------------------------------------------


def _is_list(tp: Any) -> bool:
    return tp is list or get_origin(tp) is list


def _union_args(tp: Any) -> tuple[Any, ...]:
    if isinstance(tp, types.UnionType) or get_origin(tp) is Union:
        return get_args(tp)
    return ()


def _without_none(tp: Any) -> tuple[Any, bool]:
    """``(tp without None, whether None was allowed)``."""
    args = _union_args(tp)
    if _NONE_TYPE not in args:
        return tp, False
    rest = [arg for arg in args if arg is not _NONE_TYPE]
    return functools.reduce(operator.or_, rest), True


def _init_is_plain(cls: type) -> bool:
    """Whether ``cls(**kw)`` only stores each argument on its attribute (so stores may replace it)."""
    init: Any = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    if code is None or not code.co_filename.startswith("<attrs generated"):
        return False  # a hand-written or inherited __init__
    setattr_: Any = cls.__setattr__
    if setattr_ is not object.__setattr__:
        return False  # frozen, or on_setattr hooks
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        return False
    return all(
        a.init
        and a.converter is None
        and a.validator is None
        and not (isinstance(a.default, attrs.Factory) and a.default.takes_self)  # type: ignore[arg-type]
        for a in attrs.fields(cls)
    )


_EXACT_TYPES: Final = {int: "an integer", str: "a string", bool: "a boolean"}
_GENERATED: Final = "_betatel_generated"  # attribute marking a generated hook with its class


class _Source:
    """The source text and namespace of one generated function. Private."""

    def __init__(self, conv: cattrs.Converter) -> None:
        self.conv = conv
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {
            "_new": object.__new__,
            "_wrong": _wrong_type,
            "_not_object": _not_an_object,
            "int": int,
            "str": str,
            "bool": bool,
            "dict": dict,
            "list": list,
        }
        self.depth = 1
        self._counter = 0
        # Read optional keys with ``o[key]`` (a KeyError sends the caller to a
        # ``.get`` version): cheaper than a method call per field when, as in
        # the API's answers, every key is present.
        self.subscript = False

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def bind(self, prefix: str, value: Any) -> str:
        name = self.fresh(prefix)
        self.ns[name] = value
        return name

    def compile(self, name: str, signature: str, cls: type) -> StructureFn:
        source = "\n".join([f"def {name}({signature}):", *self.lines, ""])
        filename = f"<betatel_async generated {name} {cls.__module__}.{cls.__qualname__}>"
        exec(compile(source, filename, "exec"), self.ns)  # noqa: S102 - our own generated source
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        fn: StructureFn = self.ns[name]
        setattr(fn, _GENERATED, cls)
        return fn

    def model(self, cls: type, src: str, dst: str, omit: tuple[str, ...] = ()) -> None:
        """Statements that build ``cls`` from the JSON object in ``src`` into the local ``dst``."""
        plain = _init_is_plain(cls)
        c = self.bind("c", cls)
        self.emit(f"if type({src}) is not dict:")
        self.emit(f"    raise _not_object({c}, {src})")
        values: list[tuple[attrs.Attribute[Any], str]] = []
        for a in attrs.fields(cls):
            var = self.fresh("v")
            if a.name in omit or not a.init:
                if a.default is attrs.NOTHING:
                    raise TypeError(f"{cls.__name__}.{a.name} is omitted from JSON but has no default")
                if plain:
                    values.append((a, var))
                    self.emit(f"{var} = {self._default(a)}")
                continue
            values.append((a, var))
            key = repr(a.name)
            inner, nullable = _without_none(a.type)
            if a.default is attrs.NOTHING:
                self.emit(f"{var} = {src}[{key}]")
                self.convert(var, inner, a.type, nullable=nullable)
            elif a.default is None and nullable:
                self.emit(f"{var} = {src}[{key}]" if self.subscript else f"{var} = {src}.get({key})")
                self.convert(var, inner, a.type, nullable=True)
            else:
                # A default other than None: absent takes it; a value (null too) goes to the hook.
                hook = self.bind("h", self.conv.get_structure_hook(a.type))
                tp = self.bind("t", a.type)
                self.emit(f"{var} = {hook}({src}[{key}], {tp}) if {key} in {src} else {self._default(a)}")
        if plain:
            self.emit(f"{dst} = _new({c})")
            for a, var in values:
                self.emit(f"{dst}.{a.name} = {var}")
        else:
            args = ", ".join(f"{a.alias}={var}" for a, var in values)
            self.emit(f"{dst} = {c}({args})")

    def _default(self, a: attrs.Attribute[Any]) -> str:
        default: Any = a.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            return self.bind("f", default.factory) + "()"
        return self.bind("d", default)

    def convert(self, var: str, tp: Any, full: Any, *, nullable: bool) -> None:
        """Statements that check ``var`` against ``tp`` (``None`` passes if ``nullable``) and convert it."""
        if tp in _EXACT_TYPES:
            # The type test first: it settles the usual case (a value) alone.
            guard = f" and {var} is not None" if nullable else ""
            self.emit(f"if type({var}) is not {tp.__name__}{guard}:")
            self.emit(f"    raise _wrong({_EXACT_TYPES[tp]!r}, {var})")
            return
        args = _union_args(tp)
        objects = [arg for arg in args if arg is not int]
        if int in args and all(attrs.has(arg) for arg in objects):
            # An id or an object: ``PackageTemplate | PackageTemplateInfo | int``.
            # The id, the case of every list, is settled without a call.
            target = functools.reduce(operator.or_, objects)
            hook = self.bind("h", self.conv.get_structure_hook(target))
            guard = f" and {var} is not None" if nullable else ""
            self.emit(f"if type({var}) is not int{guard}:")
            self.emit(f"    {var} = {hook}({var}, {self.bind('t', target)})")
            return
        if nullable:
            self.emit(f"if {var} is not None:")
        self.depth += nullable
        enum_cls = next((e for e in _OPEN_ENUMS if set(args) == {e, str}), None)
        if enum_cls is not None:
            members = self.bind("m", _ENUM_MEMBERS[enum_cls].get)
            self.emit(f"if type({var}) is not str:")
            self.emit(f"    raise _wrong('a string', {var})")
            self.emit(f"{var} = {members}({var}, {var})")
        elif tp is Ref and _init_is_plain(Ref):
            self._ref(var)
        elif attrs.has(tp):
            hook = self.bind("h", self.conv.get_structure_hook(tp))
            self.emit(f"{var} = {hook}({var}, {self.bind('t', tp)})")
        elif _is_list(tp) and get_args(tp):
            (elem,) = get_args(tp)
            self.emit(f"if type({var}) is not list:")
            self.emit(f"    raise _wrong('an array', {var})")
            elem_hook = self.conv.get_structure_hook(elem)
            generated_for: type | None = getattr(elem_hook, _GENERATED, None)
            if generated_for is not None and generated_for is elem and self.subscript:
                # One of ours inside a list function's loop: a nested loop, no call.
                out, elem_var, built = self.fresh("n"), self.fresh("e"), self.fresh("b")
                self.emit(f"{out} = []")
                self.emit(f"for {elem_var} in {var}:")
                self.depth += 1
                self.model(elem, elem_var, built)
                self.emit(f"{out}.append({built})")
                self.depth -= 1
                self.emit(f"{var} = {out}")
            elif generated_for is not None and generated_for is elem:
                # One of ours: build the elements inline in a loop, not one call each.
                structure_list = self.bind("l", make_fast_list_structure_fn(generated_for, self.conv))
                self.emit(f"{var} = {structure_list}({var})")
            else:
                name, tp_name = self.bind("h", elem_hook), self.bind("t", elem)
                self.emit(f"{var} = [{name}(e, {tp_name}) for e in {var}]")
        else:
            hook = self.bind("h", self.conv.get_structure_hook(full))
            self.emit(f"{var} = {hook}({var}, {self.bind('t', full)})")
        self.depth -= nullable

    def _ref(self, var: str) -> None:
        # Ref inline: three per SIM, so a call each is worth saving.
        ident, name, ref = self.fresh("ri"), self.fresh("rn"), self.fresh("r")
        self.emit(f"if type({var}) is dict:")
        self.emit(f"    {ident} = {var}['id']")
        self.emit(f"    {name} = {var}['name']")
        self.emit(f"    if type({ident}) is not int:")
        self.emit(f"        raise _wrong('an integer id', {ident})")
        self.emit(f"    if type({name}) is not str:")
        self.emit(f"        raise _wrong('a string name', {name})")
        self.emit(f"elif type({var}) is int:")
        self.emit(f"    {ident} = {var}")
        self.emit(f"    {name} = None")
        self.emit("else:")
        self.emit(f"    raise _wrong('an id or an {{id, name}} object', {var})")
        ref_cls = self.bind("c", Ref)
        self.emit(f"{ref} = _new({ref_cls})")
        self.emit(f"{ref}.id = {ident}")
        self.emit(f"{ref}.name = {name}")
        self.emit(f"{var} = {ref}")


def make_fast_structure_fn(
    cls: type[T], conv: cattrs.Converter, *, omit: tuple[str, ...] = ()
) -> StructureFn:
    """Generate the hot-path structure function of an attrs model.

    The function takes ``(value)`` or ``(value, type)`` and builds ``cls``
    from a JSON object with the rules of the detailed converter: the value
    must be a ``dict``; unknown keys are ignored; a missing required key raises
    ``KeyError``; ``int``, ``str`` and ``bool`` fields take exactly that type;
    ``None`` is taken by optional fields only; open enums give their member or
    keep unknown text; [`Ref`][betatel_async.Ref] takes an id or an object; lists must be
    lists. Other field types (and nested models) use ``conv``'s hooks.

    Args:
        cls: An attrs class whose fields' JSON keys are their names.
        conv: Where the hooks of nested models and other types come from
            (register those first).
        omit: Fields that are not in the JSON: never read, left at their default.

    Returns:
        The structure function; its source is in ``linecache`` for tracebacks.
    """
    attrs.resolve_types(cls)  # type: ignore[type-var]
    src = _Source(conv)
    src.model(cls, "o", "self", omit)
    src.emit("return self")
    return src.compile(f"structure_{cls.__name__}", "o, _=None", cls)


def make_fast_list_structure_fn(
    cls: type[T], conv: cattrs.Converter, *, consume: bool = False
) -> Callable[..., list[T]]:
    """Generate a function that structures a list of JSON objects into ``cls`` instances.

    The rules are `make_fast_structure_fn()`'s; each element is built
    inline in the loop, reading optional keys as ``o[key]``: an element that
    lacks one is built again by `make_fast_structure_fn()`'s function.

    The function is ``fn(items, out=None)``: it appends to ``out`` (a new list
    if ``None``) and returns it; if it fails, ``len(out)`` is the index of the
    element that failed. With ``consume``, each element of ``items`` is set to
    ``None`` once built, so a page's JSON objects are freed while its models
    are made rather than after: the garbage collector, which counts
    allocations minus deallocations, then sees one page's worth of objects,
    not two, and does not run (and promote survivors) once per page.
    """
    attrs.resolve_types(cls)  # type: ignore[type-var]
    src = _Source(conv)
    one = src.bind("one", make_fast_structure_fn(cls, conv))
    src.emit("if out is None:")
    src.emit("    out = []")
    src.emit("append = out.append")
    if consume:
        src.emit("i = 0")
    src.emit("for o in items:")
    src.depth += 1
    src.emit("try:")
    src.depth += 1
    src.subscript = True
    src.model(cls, "o", "self")
    src.subscript = False
    src.depth -= 1
    src.emit("except KeyError:")
    src.emit(f"    self = {one}(o)  # a key is missing: .get() for the optional ones")
    src.emit("append(self)")
    if consume:
        src.emit("items[i] = None")
        src.emit("i += 1")
    src.depth -= 1
    src.emit("return out")
    name = f"structure_list_of_{cls.__name__}" + ("_consuming" if consume else "")
    return src.compile(name, "items, out=None", cls)


# -- converter setup -------------------------------------------------------------------------


def configure_converter(conv: cattrs.Converter, *, detailed: bool) -> None:
    """Register every hook betatel_async needs on ``conv``.

    Registers, for both kinds of converter:
        - ``int``, ``str`` and ``bool``: strict (no coercion of ``"12"``,
          ``1.9`` or ``1``).
        - ``list[X]``: only a JSON array (cattrs would take any iterable).
        - each open enum (``SimStatus | str`` and ``SimStatus | str | None``
          and friends): known text to its member, unknown text kept as
          ``str``; ``null`` only where the field is optional.
        - [`Ref`][betatel_async.Ref] and ``Ref | None``: from a bare id or an ``{id, name}``
          object (both keys required); unstructured back to the same shape (a
          bare id for a ``Ref`` without a name).
        - ``PackageTemplate | PackageTemplateInfo`` (a factory, so it is made
          once both models' hooks are registered): the full template if the
          object has any of ``_FULL_TEMPLATE_KEYS``, else the info; and
          ``PackageTemplate | PackageTemplateInfo | int``: an id or such an object.
        - every model: structured from a JSON object only, unknown keys
          ignored; unstructured with ``None`` fields omitted (absent in,
          absent out); ``Package.reconciled`` never read from or written to JSON.

    With ``detailed=False`` (the hot path) the models' structure hooks are
    generated by `make_fast_structure_fn()`; with ``detailed=True`` they are
    cattrs' detailed-validation hooks, whose errors carry the bad field's path.

    Args:
        conv: A fresh converter.
        detailed: Build the slower hooks whose errors say where the problem is.
    """
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook_factory(_is_list, _lists_only)
    for enum_cls in _OPEN_ENUMS:
        optional = _open_enum_hook(enum_cls, nullable=True)
        required = _open_enum_hook(enum_cls, nullable=False)
        conv.register_structure_hook_func(lambda t, e=enum_cls: t == (e | str | None), optional)  # type: ignore[misc]
        conv.register_structure_hook_func(lambda t, e=enum_cls: t == (e | str), required)  # type: ignore[misc]
    ref_hook: Callable[[Any, Any], Ref | None] = _structure_ref
    if detailed:
        ref_object = make_dict_structure_fn(_RefObject, conv, _cattrs_detailed_validation=True)
        ref_hook = _detailed_ref_hook(_objects_only(_RefObject, ref_object))
    conv.register_structure_hook(Ref, ref_hook)
    conv.register_structure_hook_func(lambda t: t == (Ref | None), ref_hook)
    conv.register_unstructure_hook(Ref, _unstructure_ref)
    # Factories: made on first use, when Package's hook looks them up, after
    # both template models are registered (they come first in _MODELS).
    conv.register_structure_hook_factory(
        lambda t: t == _TEMPLATE_OBJECT, lambda _: _template_object_hook(conv)
    )
    conv.register_structure_hook_factory(
        lambda t: t == _TEMPLATE_OBJECT | int, lambda _: _template_or_id_hook(conv)
    )
    for model in _MODELS:
        omit = _LOCAL_FIELDS.get(model, ())
        # Fields that are the SDK's own, not the API's: never read from or written to JSON.
        local: dict[str, Any] = {name: override(omit=True) for name in omit}
        if detailed:
            structure = _objects_only(
                model, make_dict_structure_fn(model, conv, _cattrs_detailed_validation=True, **local)
            )
        else:
            structure = make_fast_structure_fn(model, conv, omit=omit)
        conv.register_structure_hook(model, structure)
        conv.register_unstructure_hook(
            model, make_dict_unstructure_fn(model, conv, _cattrs_omit_if_default=True, **local)
        )


def _make(detailed: bool) -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=detailed)
    configure_converter(conv, detailed=detailed)
    return conv


# Built on first use, not on import (generating the hooks is most of this
# module's import time): ``converter`` and ``_LIST_FNS`` are looked up through
# the module's ``__getattr__``; code here calls ``_fast()`` and ``_list_fns()``.
converter: cattrs.Converter
"""The converter of the hot path. Use [`unstructure()`][betatel_async.unstructure] to turn models back into JSON-ready data."""

# The items of a page, structured in one call (each item built inline in its loop).
_LIST_FNS: dict[type, Callable[..., list[Any]]]

_fast_converter: cattrs.Converter | None = None
_list_functions: dict[type, Callable[..., list[Any]]] | None = None
_detailed_converter: cattrs.Converter | None = None


def _fast() -> cattrs.Converter:
    global _fast_converter
    if _fast_converter is None:
        _fast_converter = _make(detailed=False)
    return _fast_converter


def _list_fns() -> dict[type, Callable[..., list[Any]]]:
    global _list_functions
    if _list_functions is None:
        conv = _fast()
        _list_functions = {
            model: make_fast_list_structure_fn(model, conv, consume=True)
            for model in (Sim, Inventory, Package, PackageTemplate, Country)
        }
    return _list_functions


def __getattr__(name: str) -> Any:
    if name == "converter":
        return _fast()
    if name == "_LIST_FNS":
        return _list_fns()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _detailed() -> cattrs.Converter:
    global _detailed_converter
    if _detailed_converter is None:
        _detailed_converter = _make(detailed=True)
    return _detailed_converter


def unstructure(obj: Any) -> Any:
    """Turn a model (or a list of them) back into the API's JSON shape."""
    return _fast().unstructure(obj)


# -- decoding --------------------------------------------------------------------------------


def _format(exc: BaseException, tp: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, TypeError | ValueError) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return format_exception(exc, tp)


def _describe_failure(data: Any, cls: Any, prefix: str) -> tuple[str, str]:
    """Structure ``data`` again with detailed validation; return (json path, message)."""
    try:
        _detailed().structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - any failure is reported with its path
        messages: list[str] = []
        if isinstance(exc, cattrs.BaseValidationError):
            try:
                messages = cattrs.transform_error(exc, path=prefix, format_exception=_format)
            except Exception:  # noqa: BLE001 - a message without a path beats a crash
                messages = []
        if messages:
            first = messages[0]
            message, _, path = first.rpartition(" @ ")
            return path or prefix, message or first
        return prefix, f"{type(exc).__name__}: {exc}"
    return prefix, "could not be decoded"  # pragma: no cover - the converters agree (tested)


def decode_json(body: bytes, *, method: str, path: str, status: int) -> Any:
    """Parse a JSON body, mapping a parse failure to MalformedResponseError.

    The decoder's exception is neither chained nor left as the context: it
    holds the whole document, which may echo the API key.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
    raise MalformedResponseError(
        f"response body is not JSON ({len(body)} bytes; {reason})", status=status, method=method, path=path
    )


def decode_model(data: Any, cls: type[T], *, method: str, path: str, status: int = 200) -> T:
    """Structure one JSON object into ``cls``, or raise MalformedResponseError naming the field.

    An [`EuiccProfile`][betatel_async.EuiccProfile] may come wrapped as ``{"profile":
    {...}}`` (an older documented shape): an object without ``iccid`` whose
    ``profile`` is an object is unwrapped first, and errors then name
    ``$.profile.<field>``.

    Args:
        data: The parsed JSON body.
        cls: The model to build.
        method: For error messages.
        path: For error messages.
        status: The response's status code, for error messages.

    Raises:
        MalformedResponseError: ``data`` is not a ``cls``; ``json_path`` names
            the bad or missing field (``$.sim_status``).
    """
    prefix = "$"
    key = _WRAPPERS.get(cls)
    if key is not None and type(data) is dict and "iccid" not in data and type(data.get(key)) is dict:
        data, prefix = data[key], f"$.{key}"
    try:
        return _fast().structure(data, cls)
    except Exception as exc:
        json_path, message = _describe_failure(data, cls, prefix)
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
        # The type only, never the text: a hostile server's string could be
        # long or echo the key, and this message is not redacted.
        got = value if type(value) is int else type(value).__name__
        raise MalformedResponseError(
            f"page field {key!r} must be a non-negative integer, got {got}",
            json_path=f"$.{key}",
            method=method,
            path=path,
        )
    return value


def check_page(body: Any, key: str, *, method: str, path: str) -> Page[Any]:
    """Check a list response's envelope ``{total, offset, count, <key>: [...]}``; leave the items raw.

    With `structure_page()`, this splits `decode_page()` in two, so a
    scan can learn ``total`` and the page's length when the page arrives and
    build the typed items only when it hands the page on: objects that are
    consumed soon after they are made die young, and Python's garbage collector
    never has to promote (and then rescan) pages buffered for ordering.

    Args:
        body: The parsed JSON body.
        key: Name of the item array (``"sims"``, ``"inventories"``, ``"packages"``).
        method: For error messages.
        path: For error messages.

    Returns:
        A page whose ``items`` is the body's array itself (JSON values, not yet checked).

    Raises:
        MalformedResponseError: The envelope is not as documented (``json_path``
            ``$``, ``$.total``, ``$.offset`` or ``$.<key>``).
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
    return Page(total=total, offset=offset, count=count, items=items)


def structure_page(page: Page[Any], key: str, cls: type[T], *, method: str, path: str) -> Page[T]:
    """Build the typed items of a page from `check_page()`, in place.

    ``page.items`` is replaced by the typed list, and each JSON object is
    freed as soon as its model is built (see
    `make_fast_list_structure_fn()`): the raw page is consumed.

    Args:
        page: A checked page with raw JSON items; it becomes the typed page.
        key: Name of the item array, for error paths.
        cls: Model class of the items.
        method: For error messages.
        path: For error messages.

    Returns:
        ``page`` itself, now holding ``cls`` instances.

    Raises:
        MalformedResponseError: An item is not as documented; ``json_path``
            names the bad field (``$.sims[3].imsis[0].imsi``). ``page`` is
            then of no further use.
    """
    items = page.items
    structure_list = _list_fns().get(cls)
    if structure_list is not None:
        built: list[T] = []
        try:
            page.items = structure_list(items, built)
        except Exception as exc:
            # Elements before the failing one were consumed; it is intact.
            index = len(built)
            raise _malformed_item(items[index], cls, f"$.{key}[{index}]", method, path) from exc
        return page
    structure = _fast().get_structure_hook(cls)
    try:
        page.items = [structure(item, cls) for item in items]
    except Exception as exc:
        raise _malformed_item(items, list[cls], f"$.{key}", method, path) from exc  # type: ignore[valid-type]
    return page


def _malformed_item(data: Any, cls: Any, prefix: str, method: str, path: str) -> MalformedResponseError:
    json_path, message = _describe_failure(data, cls, prefix)
    return MalformedResponseError(
        f"unexpected value at {json_path}: {message}", json_path=json_path, method=method, path=path
    )


def decode_page(body: Any, key: str, cls: type[T], *, method: str, path: str) -> Page[T]:
    """Decode a list response ``{total, offset, count, <key>: [...]}`` into a Page.

    `check_page()` then `structure_page()`.

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
    page = check_page(body, key, method=method, path=path)
    return structure_page(page, key, cls, method=method, path=path)
