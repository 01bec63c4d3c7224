"""Decode cost per SIM record: bytes of a list page to Python objects, several ways, one run.

Every contender decodes the same list-SIM pages, generated exactly as the
sandbox serves them (about 350 bytes per SIM with the default mixed shape:
references as ``{id, name}`` objects and as bare ids, alternately), from the
raw body bytes:

- ``json.loads`` and ``orjson.loads``: to plain dicts, no types, no checks.
- betatel_async: ``decode_page(orjson.loads(body), "sims", Sim, ...)``, the
  SDK's whole path from bytes to a typed ``Page[Sim]`` with strict checks.
- cattrs ``make_dict_structure_fn`` hooks (``detailed_validation=False``) with
  the SDK's strict hooks: the decode path before the generated functions.
- pydantic v2 ``model_validate_json``, if installed: strict models with the same
  fields and the same output types (a bare id becomes a ``Ref`` through a
  before-validator, as the SDK makes one), and the plain ``Ref | int`` union,
  which leaves a bare id an ``int`` (less work than ours).
- msgspec, if installed: Structs with the ``Ref | int`` union (msgspec takes
  no union of a str enum and str, so the status is plain text).

Contenders run in interleaved rounds; each page's result is dropped at once, as
a streaming scan drops it. By default the garbage collector runs as in any
application and the table gives means (a full collection lands in some rounds
only, and its cost is real: it grows with what a decoder allocates and keeps);
``--no-gc`` measures the decoders' own CPU alone and gives medians.

Usage::

    python benchmarks/decode.py            # 50 pages of 100 SIMs, 25 rounds
    python benchmarks/decode.py --no-gc    # the same without the collector
    python benchmarks/decode.py --quick    # a smoke run (CI): seconds, not timing
"""

# No ``from __future__ import annotations``: the pydantic and msgspec models are
# defined in functions, and their annotations must not be strings.
import argparse
import gc
import json
import statistics
from collections.abc import Callable
from typing import Any

import cattrs
import orjson
from _common import environment, interleaved, median, print_table, ratio_medians, sim_pages
from cattrs.gen import make_dict_structure_fn

from betatel_async._converter import _LOCAL_FIELDS, _MODELS, configure_converter, decode_page
from betatel_async._models import Sim, SimStatus

OURS = "betatel_async decode_page (orjson + generated hooks)"
PYDANTIC = "pydantic v2 model_validate_json, same types as ours"
PATH = "/api/v1/esim/sim-registries"


def cattrs_generated_hooks() -> Callable[[bytes], list[Any]]:
    """The previous decode path: cattrs' generated hooks with detailed validation off."""
    conv = cattrs.Converter(detailed_validation=False)
    configure_converter(conv, detailed=False)
    for model in _MODELS:
        local: dict[str, Any] = {name: cattrs.override(omit=True) for name in _LOCAL_FIELDS.get(model, ())}
        conv.register_structure_hook(
            model, make_dict_structure_fn(model, conv, _cattrs_detailed_validation=False, **local)
        )
    structure = conv.get_structure_hook(Sim)

    def decode(body: bytes) -> list[Any]:
        return [structure(item, Sim) for item in orjson.loads(body)["sims"]]

    return decode


def pydantic_decoders() -> dict[str, Callable[[bytes], list[Any]]]:
    """Two pydantic v2 models of a SIM page: the SDK's output types, and the plain union."""
    try:
        from pydantic import BaseModel, ConfigDict, model_validator
    except ImportError:
        return {}

    class Strict(BaseModel):
        # Strict, as the SDK: no "12" for an int. (Lax mode measures the same here.)
        model_config = ConfigDict(strict=True)

    class Imsi(Strict):
        sponsor_id: int | None = None
        imsi: int | None = None

    class Ref(Strict):
        id: int
        name: str | None = None

    class RefFromId(Strict):
        # What the SDK does: a bare id becomes a Ref too. (A subclass of Ref
        # with this validator measures much slower; this is pydantic at its best.)
        id: int
        name: str | None = None

        @model_validator(mode="before")
        @classmethod
        def from_id(cls, value: Any) -> Any:
            return {"id": value} if type(value) is int else value

    def page_model(ref: Any) -> Any:
        class PSim(Strict):
            iccid: str
            sim_status: SimStatus | str | None = None
            group: ref = None
            inventory: ref = None
            company: ref = None
            provisioned_date: int | None = None
            terminated_date: int | None = None
            created_date: int | None = None
            modified_date: int | None = None
            imsis: list[Imsi] | None = None
            mapped_imsi: int | None = None

        class SimPage(Strict):
            total: int
            offset: int
            count: int
            sims: list[PSim]

        return SimPage

    same = page_model(RefFromId | None)
    union = page_model(Ref | int | None)
    return {
        PYDANTIC: lambda body: same.model_validate_json(body).sims,
        "pydantic v2, a bare id stays an int": lambda body: union.model_validate_json(body).sims,
    }


def msgspec_decoder() -> Callable[[bytes], list[Any]] | None:
    try:
        import msgspec
    except ImportError:
        return None

    class Ref(msgspec.Struct):
        id: int
        name: str | None = None

    class Imsi(msgspec.Struct):
        sponsor_id: int | None = None
        imsi: int | None = None

    class MSim(msgspec.Struct):
        iccid: str
        # msgspec takes no union of a str enum and str: plain text here.
        sim_status: str | None = None
        group: Ref | int | None = None
        inventory: Ref | int | None = None
        company: Ref | int | None = None
        provisioned_date: int | None = None
        terminated_date: int | None = None
        created_date: int | None = None
        modified_date: int | None = None
        imsis: list[Imsi] | None = None
        mapped_imsi: int | None = None

    class SimPage(msgspec.Struct):
        total: int
        offset: int
        count: int
        sims: list[MSim]

    decoder = msgspec.json.Decoder(SimPage)

    def decode(body: bytes) -> list[Any]:
        return decoder.decode(body).sims

    return decode


def ours(body: bytes) -> list[Any]:
    return decode_page(orjson.loads(body), "sims", Sim, method="GET", path=PATH).items


def contenders() -> dict[str, Callable[[bytes], list[Any]]]:
    found: dict[str, Callable[[bytes], list[Any]] | None] = {
        "json.loads, to dicts": lambda body: json.loads(body)["sims"],
        "orjson.loads, to dicts": lambda body: orjson.loads(body)["sims"],
        OURS: ours,
        "cattrs generated hooks (the previous path)": cattrs_generated_hooks(),
        **pydantic_decoders(),
        "msgspec Structs, a bare id stays an int": msgspec_decoder(),
    }
    return {name: fn for name, fn in found.items() if fn is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=int, default=50, help="pages per round (default %(default)s)")
    parser.add_argument("--per-page", type=int, default=100, help="SIMs per page (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds (default %(default)s)")
    parser.add_argument("--shape", choices=("mixed", "objects", "ids"), default="mixed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-gc",
        dest="gc",
        action="store_false",
        help="turn the cyclic garbage collector off while timing, as timeit does: the decoders' "
        "own CPU, without the collections their allocations trigger (reports medians, not means)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 pages, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.pages, args.rounds = 3, 3

    bodies = sim_pages(pages=args.pages, per_page=args.per_page, shape=args.shape, seed=args.seed)
    records = args.pages * args.per_page
    decoders = contenders()
    # Same records out of every contender, and the same first ICCID.
    reference = ours(bodies[0])
    for name, decode in decoders.items():
        first = decode(bodies[0])
        iccid = first[0]["iccid"] if isinstance(first[0], dict) else first[0].iccid
        if len(first) != len(reference) or iccid != reference[0].iccid:
            raise SystemExit(f"{name} decodes the pages differently")

    def run(decode: Callable[[bytes], list[Any]]) -> Callable[[], object]:
        def decode_all() -> None:
            for body in bodies:
                decode(body)  # the page is dropped, as a streaming scan drops it

        return decode_all

    gc.collect()
    if not args.gc:
        gc.disable()
    try:
        times = interleaved({name: run(decode) for name, decode in decoders.items()}, args.rounds)
    finally:
        gc.enable()
    average = statistics.fmean if args.gc else median
    ratios = ratio_medians(times, OURS, average=average)

    print(environment("orjson", "cattrs", "attrs", "pydantic", "msgspec"))
    size = sum(map(len, bodies)) / records
    how = "mean" if args.gc else "median"
    print(
        f"{args.pages} pages x {args.per_page} SIMs ({args.shape} shape, {size:.0f} bytes/SIM), "
        f"{args.rounds} interleaved rounds, garbage collector {'on' if args.gc else 'off'}; "
        f"{how} per record; x ours = time / ours ({how} of per-round ratios)"
    )
    print()
    rows = [[name, f"{average(ts) / records * 1e6:.2f}", f"{ratios[name]:.2f}"] for name, ts in times.items()]
    print_table(["decoder", "µs/record", "x ours"], rows)
    print()
    if PYDANTIC in ratios:
        print(f"ours vs pydantic v2 (same types): {ratios[PYDANTIC]:.2f}x faster (target >= 2)")
    print(f"ours vs json.loads to dicts: {1 / ratios['json.loads, to dicts']:.2f}x the time (target ~1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
