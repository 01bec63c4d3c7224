"""``python -m betatel_async.sandbox``: serve a sandbox until Ctrl-C.

The argument handling is split so that another command line can reuse it:
`build_parser` (or `add_arguments` on a parser of your own), then
`config_from_args`, then `serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO, get_args

from ._app import API_PREFIX, Sandbox
from ._config import (
    DEFAULT_API_KEY,
    DEFAULT_USER_ID,
    ActionResponse,
    FaultConfig,
    QrResponse,
    SandboxConfig,
    SimShape,
)
from ._server import loopback_address, serve

__all__ = ["add_arguments", "build_parser", "config_from_args", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox's options (host, port, data, timing, faults, credentials) to a parser."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="loopback address to bind (default %(default)s)")
    add("--port", type=int, default=8080, help="TCP port, 0 for any free one (default %(default)s)")
    add("--sims", type=int, default=1000, help="SIMs to generate (default %(default)s)")
    add("--seed", type=int, default=0, help="seed of data and faults (default %(default)s)")
    add("--latency-ms", type=float, default=0.0, help="time from each request's arrival to its answer, ms")
    add("--latency-jitter-ms", type=float, default=0.0, help="extra random delay up to this, ms")
    add("--page-cap", type=int, default=None, help="return at most this many items per page")
    add("--max-count", type=int, default=1000, help="largest count accepted (default %(default)s)")
    add("--sim-shape", choices=get_args(SimShape), default="objects", help="SIM list item shape")
    add(
        "--action-response",
        choices=get_args(ActionResponse),
        default="no_content",
        help="activate/terminate answer: 204 or 200 true",
    )
    add(
        "--qr-response",
        choices=get_args(QrResponse),
        default="png",
        help="eSIM QR code answer: the PNG, or an empty or HTML body a client must refuse",
    )
    add("--fault-rate", type=float, default=0.0, help="probability a request faults, 0..1")
    add(
        "--fault-kinds",
        type=_parse_kinds,
        default=None,
        metavar="KIND[=WEIGHT],...",
        help="e.g. 429=2,503,reset (default: 429,500,502,503,504,reset,truncated)",
    )
    add("--retry-after", type=float, default=0.0, help="Retry-After seconds on a 429 fault")
    add("--slow-seconds", type=float, default=30.0, help="stall of a 'slow' fault, seconds")
    add(
        "--ignore-offset",
        action="store_true",
        help="answer every listing request with the first page (envelope offset 0)",
    )
    add("--api-key", default=DEFAULT_API_KEY, help="x-api-key to accept (default %(default)s)")
    add("--user-id", default=DEFAULT_USER_ID, help="x-user-id to accept (default %(default)s)")


def build_parser(prog: str | None = "python -m betatel_async.sandbox") -> argparse.ArgumentParser:
    """The sandbox command line's parser."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve a fake Betatel eSIM API on loopback until Ctrl-C."
    )
    add_arguments(parser)
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The `SandboxConfig` that parsed arguments describe.

    Raises:
        ValueError: A value out of range, naming the field (e.g. ``latency``).
    """
    faults = FaultConfig(
        rate=args.fault_rate,
        retry_after=args.retry_after,
        slow_seconds=args.slow_seconds,
        ignore_offset=args.ignore_offset,
    )
    if args.fault_kinds is not None:
        faults.kinds = args.fault_kinds
    return SandboxConfig(
        sims=args.sims,
        seed=args.seed,
        latency=args.latency_ms / 1000,
        latency_jitter=args.latency_jitter_ms / 1000,
        page_cap=args.page_cap,
        max_count=args.max_count,
        sim_shape=args.sim_shape,
        action_response=args.action_response,
        qr_response=args.qr_response,
        faults=faults,
        api_key=args.api_key,
        user_id=args.user_id,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line: serve until interrupted.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 after Ctrl-C, 1 if the port cannot be bound. Bad
        arguments (a non-loopback ``--host`` among them) exit with status 2
        and a message, as argparse does.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        loopback_address(args.host)
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve_forever(config, args.host, args.port, sys.stdout))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve_forever(config: SandboxConfig, host: str, port: int, out: TextIO) -> None:
    print(f"Generating {config.sims} SIMs (seed {config.seed})...", file=out, flush=True)
    async with serve(config, host=host, port=port) as sandbox:
        _announce(sandbox, out)
        await asyncio.Event().wait()  # until Ctrl-C cancels us


def _announce(sandbox: Sandbox, out: TextIO) -> None:
    print(
        f"Betatel sandbox serving at {sandbox.url} (API under {API_PREFIX})\n"
        f"  x-api-key: {sandbox.api_key}\n"
        f"  x-user-id: {sandbox.user_id}\n"
        f"  export BETATEL_BASE_URL={sandbox.url} BETATEL_API_KEY={sandbox.api_key} "
        f"BETATEL_USER_ID={sandbox.user_id}\n"
        "Press Ctrl-C to stop.",
        file=out,
        flush=True,
    )


def _parse_kinds(text: str) -> dict[str, float]:
    kinds: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, weight = item.partition("=")
        try:
            kinds[kind.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad weight in {item!r}") from None
    return kinds
