"""The sandbox's command line: serve a sandbox until Ctrl-C (needs click, from the ``cli`` extra).

One click command, `command`, run two ways: ``python -m betatel_async.sandbox``
(through `main`) and ``betatel-async sandbox`` (the ``betatel-async`` group
loads it on first use). Being click, its reference page is generated from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, get_args

import click

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

__all__ = ["command", "main"]

PROG_NAME = "python -m betatel_async.sandbox"


def _parse_kinds(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, float] | None:
    """``KIND[=WEIGHT],...`` as a dict of weights (a missing weight is 1)."""
    if value is None:
        return None
    kinds: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        kind, _, weight = item.partition("=")
        try:
            kinds[kind.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise click.BadParameter(f"bad weight in {item!r}", ctx, param) from None
    return kinds


@click.command(
    "sandbox",
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.option("--host", default="127.0.0.1", help="Loopback address to bind.")
@click.option("--port", type=int, default=8080, help="TCP port, 0 for any free one.")
@click.option("--sims", type=int, default=1000, help="SIMs to generate.")
@click.option("--seed", type=int, default=0, help="Seed of data and faults.")
@click.option(
    "--latency-ms", type=float, default=0.0, help="Time from each request's arrival to its answer, ms."
)
@click.option("--latency-jitter-ms", type=float, default=0.0, help="Extra random delay up to this, ms.")
@click.option("--page-cap", type=int, default=None, help="Return at most this many items per page.")
@click.option("--max-count", type=int, default=1000, help="Largest count accepted.")
@click.option(
    "--sim-shape", type=click.Choice(get_args(SimShape)), default="objects", help="SIM list item shape."
)
@click.option(
    "--action-response",
    type=click.Choice(get_args(ActionResponse)),
    default="no_content",
    help="Activate/terminate answer: 204 or 200 true.",
)
@click.option(
    "--qr-response",
    type=click.Choice(get_args(QrResponse)),
    default="png",
    help="eSIM QR code answer: the PNG, or an empty or HTML body a client must refuse.",
)
@click.option("--fault-rate", type=float, default=0.0, help="Probability a request faults, 0..1.")
@click.option(
    "--fault-kinds",
    callback=_parse_kinds,
    default=None,
    metavar="KIND[=WEIGHT],...",
    show_default=False,
    help="Weights of the random faults, e.g. 429=2,503,reset (default: 429,500,502,503,504,reset,truncated).",
)
@click.option("--retry-after", type=float, default=0.0, help="Retry-After seconds on a 429 fault.")
@click.option("--slow-seconds", type=float, default=30.0, help="Stall of a 'slow' fault, seconds.")
@click.option(
    "--ignore-offset",
    is_flag=True,
    help="Answer every listing request with the first page (envelope offset 0).",
)
@click.option("--api-key", default=DEFAULT_API_KEY, help="x-api-key to accept.")
@click.option("--user-id", default=DEFAULT_USER_ID, help="x-user-id to accept.")
def command(*, host: str, port: int, **options: Any) -> None:
    """Serve a fake Betatel eSIM API on loopback until Ctrl-C.

    It prints the URL and the BETATEL_* variables that point a client (or the
    other betatel-async commands) at it.
    """
    try:
        loopback_address(host)
        config = config_from_options(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        asyncio.run(_serve_forever(config, host, port))
    except KeyboardInterrupt:
        # Ctrl-C is how this command ends.
        raise click.exceptions.Exit(0) from None
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None


def config_from_options(
    *,
    sims: int,
    seed: int,
    latency_ms: float,
    latency_jitter_ms: float,
    page_cap: int | None,
    max_count: int,
    sim_shape: SimShape,
    action_response: ActionResponse,
    qr_response: QrResponse,
    fault_rate: float,
    fault_kinds: dict[str, float] | None,
    retry_after: float,
    slow_seconds: float,
    ignore_offset: bool,
    api_key: str,
    user_id: str,
) -> SandboxConfig:
    """The `SandboxConfig` the command's options (all but host and port) describe.

    Raises:
        ValueError: A value out of range, naming the field (e.g. ``latency``).
    """
    faults = FaultConfig(
        rate=fault_rate, retry_after=retry_after, slow_seconds=slow_seconds, ignore_offset=ignore_offset
    )
    if fault_kinds is not None:
        faults.kinds = fault_kinds
    return SandboxConfig(
        sims=sims,
        seed=seed,
        latency=latency_ms / 1000,
        latency_jitter=latency_jitter_ms / 1000,
        page_cap=page_cap,
        max_count=max_count,
        sim_shape=sim_shape,
        action_response=action_response,
        qr_response=qr_response,
        faults=faults,
        api_key=api_key,
        user_id=user_id,
    )


def main(argv: Sequence[str] | None = None, *, prog_name: str = PROG_NAME) -> int:
    """Run the command line: serve until interrupted.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.
        prog_name: The program's name in help and usage messages.

    Returns:
        The exit status: 0 after Ctrl-C (or ``--help``), 1 if the port cannot
        be bound, 2 for bad arguments (a non-loopback ``--host`` among them),
        after a message on standard error.
    """
    try:
        command.main(args=None if argv is None else list(argv), prog_name=prog_name)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1


async def _serve_forever(config: SandboxConfig, host: str, port: int) -> None:
    click.echo(f"Generating {config.sims} SIMs (seed {config.seed})...", err=True)
    async with serve(config, host=host, port=port) as sandbox:
        _announce(sandbox)
        await asyncio.Event().wait()  # until Ctrl-C cancels us


def _announce(sandbox: Sandbox) -> None:
    # The first two lines are read by scripts (benchmarks/_common.py, the tests): URL, then the variables.
    click.echo(
        f"Betatel sandbox serving at {sandbox.url} (API under {API_PREFIX})\n"
        f"  export BETATEL_BASE_URL={sandbox.url} BETATEL_API_KEY={sandbox.api_key} "
        f"BETATEL_USER_ID={sandbox.user_id}\n"
        f"  x-api-key: {sandbox.api_key}\n"
        f"  x-user-id: {sandbox.user_id}\n"
        "Press Ctrl-C to stop."
    )
