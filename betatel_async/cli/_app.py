"""The ``betatel-async`` commands.

Exit statuses: 0 success; 1 the API or the export failed, or a file (or
standard output) could not be written (one ``Error:`` line, no traceback);
2 a usage error (bad option, missing credentials, an argument the SDK rejects
before any request); 130 interrupted (Ctrl-C), after an export has saved its
checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import click
import orjson

from .._client import BetatelClient
from .._converter import unstructure
from .._errors import BetatelError, InvalidArgumentError, InvalidArgumentTypeError
from .._export import ExportFormat, ExportResult
from .._export._csv import CSV_HELP
from .._models import PackageStatus
from .._version import __version__
from ._export import (
    CHECKPOINT_SUFFIX,
    PARTIAL_SUFFIX,
    STDOUT,
    OutputError,
    output_errors,
    run_export,
)
from ._render import ScanProgress, printable, render_status, stdout_console

__all__ = ["cli", "main"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED: Final = 130
DEFAULT_SANDBOX_SIMS: Final = 100_000
MAX_CONCURRENCY: Final = 256
"""The most requests in flight ``--concurrency`` allows: beyond it, memory grows and nothing gets faster."""
_ENV_HELP: Final = "Credentials come from BETATEL_API_KEY, BETATEL_USER_ID and (optionally) BETATEL_BASE_URL."
_FRESH_SANDBOX_HELP: Final = (
    "--sandbox starts a new sandbox, with freshly generated data, in every run: what one command "
    "creates or changes is gone in the next ('packages create --sandbox' then 'packages get ID "
    "--sandbox' gives 404). For a session that keeps state, serve one with 'betatel-async sandbox' "
    "in another terminal, set the BETATEL_BASE_URL, BETATEL_API_KEY and BETATEL_USER_ID it prints, "
    "and leave out --sandbox."
)


@attrs.frozen(slots=True, kw_only=True)
class Connection:
    """Where a command gets its client: the environment, or an in-process sandbox."""

    sandbox: bool
    sandbox_sims: int
    sandbox_seed: int
    sandbox_latency_ms: float


class _Group(click.Group):
    """Maps the SDK's errors and Ctrl-C to exit statuses for every subcommand. Private."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InvalidArgumentError, InvalidArgumentTypeError) as exc:
            # Raised before any request: the command line asked for something invalid.
            raise click.UsageError(str(exc)) from None
        except BetatelError as exc:
            # The SDK's messages name the request and never hold the API key;
            # the server's part of them may hold escape sequences.
            raise click.ClickException(printable(str(exc))) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    # asyncio.run turns Ctrl-C into cancellation of the coroutine (so cleanup,
    # the export's checkpoint among it, runs) and then raises KeyboardInterrupt.
    return asyncio.run(coro)


def connection_options(f: F) -> F:
    """Add ``--sandbox`` and its options to a command; pass them on as ``conn``."""

    @functools.wraps(f)
    def wrapper(
        *args: Any,
        sandbox: bool,
        sandbox_sims: int,
        sandbox_seed: int,
        sandbox_latency_ms: float,
        **kwargs: Any,
    ) -> Any:
        conn = Connection(
            sandbox=sandbox,
            sandbox_sims=sandbox_sims,
            sandbox_seed=sandbox_seed,
            sandbox_latency_ms=sandbox_latency_ms,
        )
        return f(*args, conn=conn, **kwargs)

    options = [
        click.option(
            "--sandbox",
            is_flag=True,
            help="Run against an in-process sandbox server with generated data (no credentials needed).",
        ),
        click.option(
            "--sandbox-sims",
            type=click.IntRange(min=0),
            default=DEFAULT_SANDBOX_SIMS,
            show_default=True,
            help="SIMs the sandbox generates.",
        ),
        click.option(
            "--sandbox-seed", type=int, default=0, show_default=True, help="Seed of the sandbox's data."
        ),
        click.option(
            "--sandbox-latency-ms",
            type=click.FloatRange(min=0),
            default=0.0,
            show_default=True,
            help="Delay of every sandbox answer, in milliseconds.",
        ),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def _concurrency_option() -> Callable[[F], F]:
    return click.option(
        "--concurrency",
        type=click.IntRange(1, MAX_CONCURRENCY),
        default=None,
        help=f"Requests in flight, 1 to {MAX_CONCURRENCY} (default 8).",
    )


def _require_credentials(conn: Connection) -> None:
    """Fail as a usage error (exit status 2) when no sandbox is asked for and credentials are unset."""
    if conn.sandbox:
        return
    missing = [name for name in ("BETATEL_API_KEY", "BETATEL_USER_ID") if not os.environ.get(name)]
    if missing:
        raise click.UsageError(f"{' and '.join(missing)} not set. {_ENV_HELP} Or pass --sandbox.")


@contextlib.asynccontextmanager
async def _open_client(
    conn: Connection, *, max_concurrency: int | None = None
) -> AsyncIterator[tuple[BetatelClient, str]]:
    """A client, and a description of its data source (for checkpoints; never the key)."""
    options: dict[str, Any] = {}
    if max_concurrency is not None:
        options["max_concurrency"] = max_concurrency
    if not conn.sandbox:
        async with BetatelClient.from_env(**options) as client:
            yield client, f"{client.base_url} user {os.environ['BETATEL_USER_ID']}"
        return
    # Imported here: aiohttp.web and the data generator are needed only with --sandbox.
    from ..sandbox import SandboxConfig, serve

    config = SandboxConfig(
        sims=conn.sandbox_sims, seed=conn.sandbox_seed, latency=conn.sandbox_latency_ms / 1000
    )
    async with (
        serve(config, host="127.0.0.1", port=0) as sandbox,
        BetatelClient(
            api_key=sandbox.api_key, user_id=sandbox.user_id, base_url=sandbox.url, **options
        ) as client,
    ):
        yield client, f"sandbox sims={conn.sandbox_sims} seed={conn.sandbox_seed}"


def _print_json(data: Any) -> None:
    with output_errors(STDOUT):
        sys.stdout.flush()
        out = sys.stdout.buffer
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
        out.flush()


class _RootGroup(_Group):
    """The top group: also offers ``sandbox``, imported only when asked for. Private.

    The sandbox's command (`betatel_async.sandbox._cli`) imports aiohttp.web
    and the data generator, which no other command needs.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "sandbox"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "sandbox":
            from ..sandbox._cli import command

            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_RootGroup, epilog=_ENV_HELP)
@click.version_option(__version__, prog_name="betatel-async")
def cli() -> None:
    """Command line of the Betatel eSIM API: export listings, SIM statistics, packages.

    Every command takes --sandbox to run against a local fake API instead.
    """


# ---------------------------------------------------------------- export


_EXPORT_HELP: Final = (
    "Export a listing: every item, in listing order, as JSON Lines (one API JSON object a line), CSV "
    "or Parquet (needs the parquet extra: pip install 'betatel-async[parquet]').\n\n"
    "A file is written to FILE.partial and renamed onto FILE only when complete. If an ordered "
    "export fails or is interrupted, FILE.checkpoint.json records its progress and --resume "
    "continues it without repeating or skipping an item.\n\n" + CSV_HELP
)


def export_options(f: F) -> F:
    """The options every ``export`` subcommand shares."""
    options = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["jsonl", "csv", "parquet"]),
            default="jsonl",
            show_default=True,
            help="jsonl: one API JSON object a line. csv: see 'betatel-async export --help'. "
            "parquet: typed columns (needs a file, and pyarrow).",
        ),
        click.option(
            "-o",
            "--output",
            default="-",
            show_default=True,
            metavar="FILE",
            help="Output file, or - for standard output (no checkpoint, no --resume).",
        ),
        click.option(
            "--page-size", type=click.IntRange(1, 1000), default=None, help="Items per request (default 100)."
        ),
        _concurrency_option(),
        click.option(
            "--unordered",
            is_flag=True,
            help="Write pages as they arrive instead of in listing order (cannot be resumed).",
        ),
        click.option(
            "--resume",
            is_flag=True,
            help="Continue the interrupted export of FILE from its checkpoint (starts anew if there is none).",
        ),
    ]
    decorated: Any = f
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


@cli.group(
    cls=_Group, help=_EXPORT_HELP, short_help="Export a listing as JSON Lines, CSV or Parquet (resumable)."
)
def export() -> None:
    pass


def _export(
    resource: str,
    filters: dict[str, str | int | None],
    *,
    conn: Connection,
    fmt: ExportFormat,
    output: str,
    page_size: int | None,
    concurrency: int | None,
    unordered: bool,
    resume: bool,
) -> None:
    if output != "-":
        parent = Path(output).parent
        if not parent.is_dir():
            raise click.BadParameter(f"directory {str(parent)!r} does not exist", param_hint="'--output'")
        if Path(output).is_dir():
            raise click.BadParameter(f"{output!r} is a directory", param_hint="'--output'")
    if resume and output == "-":
        raise click.UsageError("--resume needs an output file (-o FILE)")
    if resume and unordered:
        raise click.UsageError("--resume needs an ordered export: drop --unordered")
    if fmt == "parquet" and output == "-":
        raise click.UsageError("--format parquet needs an output file (-o FILE)")
    _require_credentials(conn)
    started = time.monotonic()
    results: list[ExportResult] = []

    async def go() -> None:
        async with _open_client(conn, max_concurrency=concurrency) as (client, _source):
            with ScanProgress(
                f"Exporting {resource.replace('_', ' ')}", enabled=sys.stderr.isatty()
            ) as progress:
                results.append(
                    await run_export(
                        client,
                        resource,
                        {name: value for name, value in filters.items() if value is not None},
                        fmt=fmt,
                        output=output,
                        page_size=page_size,
                        concurrency=concurrency,
                        ordered=not unordered,
                        resume=resume,
                        on_progress=progress.update,
                    )
                )

    try:
        _run(go())
    except (BetatelError, OutputError, KeyboardInterrupt):
        checkpoint = Path(output + CHECKPOINT_SUFFIX)
        if output != "-" and not unordered and checkpoint.exists():
            click.echo(
                f"Export stopped; progress saved in {checkpoint}. "
                "Run the same command with --resume to continue.",
                err=True,
            )
        raise
    _summary(resource, output, results[0], time.monotonic() - started)


def _summary(resource: str, output: str, result: ExportResult, elapsed: float) -> None:
    report = result.report
    where = "standard output" if output == "-" else output
    written = result.items - result.resumed_from
    rate = written / elapsed if elapsed > 0 else 0.0
    resumed = ""
    if result.resumed_from:
        click.echo(
            f"Resumed: skipped {result.resumed_from} items already in {output}{PARTIAL_SUFFIX}.", err=True
        )
        resumed = f", {written} of them in this run"
    click.echo(
        f"Exported {result.items} {resource.replace('_', ' ')} to {where}{resumed}: "
        f"{report.pages} pages, {report.retries} retries, {elapsed:.1f} s, {rate:,.0f} items/s.",
        err=True,
    )


@export.command("sims")
@click.option("--company", type=click.IntRange(min=0), help="Only SIMs of this company id.")
@click.option("--inventory", type=click.IntRange(min=0), help="Only SIMs of this inventory id.")
@click.option("--group", type=click.IntRange(min=0), help="Only SIMs of this group id.")
@export_options
@connection_options
def export_sims(
    *, company: int | None, inventory: int | None, group: int | None, fmt: ExportFormat, **kwargs: Any
) -> None:
    """Export the SIM registry."""
    _export("sims", {"company": company, "inventory": inventory, "group": group}, fmt=fmt, **kwargs)


@export.command("inventories")
@export_options
@connection_options
def export_inventories(*, fmt: ExportFormat, **kwargs: Any) -> None:
    """Export the inventories."""
    _export("inventories", {}, fmt=fmt, **kwargs)


@export.command("packages")
@click.option("--inventory", type=click.IntRange(min=0), help="Only packages of this inventory id.")
@click.option("--package-template", type=click.IntRange(min=0), help="Only packages of this template id.")
@click.option("--sim", metavar="ICCID", help="Only packages of this SIM.")
@click.option(
    "--status", type=click.Choice([s.value for s in PackageStatus]), help="Only packages in this status."
)
@export_options
@connection_options
def export_packages(
    *,
    inventory: int | None,
    package_template: int | None,
    sim: str | None,
    status: str | None,
    fmt: ExportFormat,
    **kwargs: Any,
) -> None:
    """Export the packages."""
    filters: dict[str, str | int | None] = {
        "inventory": inventory,
        "package_template": package_template,
        "sim": sim,
        "status": status,
    }
    _export("packages", filters, fmt=fmt, **kwargs)


@export.command("package-templates")
@click.option("--inventory", type=click.IntRange(min=0), help="Only the templates of this inventory id.")
@export_options
@connection_options
def export_package_templates(*, inventory: int | None, fmt: ExportFormat, **kwargs: Any) -> None:
    """Export the package templates."""
    _export("package_templates", {"inventory": inventory}, fmt=fmt, **kwargs)


@export.command("countries")
@export_options
@connection_options
def export_countries(*, fmt: ExportFormat, **kwargs: Any) -> None:
    """Export the countries."""
    _export("countries", {}, fmt=fmt, **kwargs)


# ---------------------------------------------------------------- status


@cli.command()
@click.option("--company", type=click.IntRange(min=0), help="Only SIMs of this company id.")
@click.option("--inventory", type=click.IntRange(min=0), help="Only SIMs of this inventory id.")
@click.option("--group", type=click.IntRange(min=0), help="Only SIMs of this group id.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--page-size", type=click.IntRange(1, 1000), default=None, help="Items per request (default 100)."
)
@_concurrency_option()
@connection_options
def status(
    *,
    company: int | None,
    inventory: int | None,
    group: int | None,
    as_json: bool,
    page_size: int | None,
    concurrency: int | None,
    conn: Connection,
) -> None:
    """SIM inventory statistics: per holder (company, inventory), per network and status.

    Counted from one consistent scan of the SIM registry.
    """
    _require_credentials(conn)

    async def go() -> Any:
        async with _open_client(conn, max_concurrency=concurrency) as (client, _):
            with ScanProgress("Counting SIMs", enabled=sys.stderr.isatty()) as progress:
                return await client.sims.status(
                    company=company,
                    inventory=inventory,
                    group=group,
                    page_size=page_size,
                    concurrency=concurrency,
                    on_progress=progress.update,
                )

    report = _run(go())
    if as_json:
        _print_json(report.to_dict())
    else:
        with output_errors(STDOUT):
            render_status(report, stdout_console())


# ---------------------------------------------------------------- single items


@cli.group(cls=_Group)
def packages() -> None:
    """Get, create, activate and terminate packages (JSON on standard output)."""


@packages.command("get", epilog=_FRESH_SANDBOX_HELP)
@click.argument("package_id", metavar="ID")
@connection_options
def packages_get(*, package_id: str, conn: Connection) -> None:
    """Print one package."""
    _require_credentials(conn)

    async def go() -> Any:
        async with _open_client(conn) as (client, _):
            return await client.packages.get(package_id)

    _print_json(unstructure(_run(go())))


@packages.command("create", epilog=_FRESH_SANDBOX_HELP)
@click.option("--sim", required=True, metavar="ICCID", help="The SIM to put the package on.")
@click.option(
    "--template",
    "template",
    required=True,
    type=click.IntRange(min=0),
    metavar="ID",
    help="Package template id.",
)
@click.option("--time-allowance", type=click.IntRange(min=0), metavar="S", help="Time allowance in seconds.")
@connection_options
def packages_create(*, sim: str, template: int, time_allowance: int | None, conn: Connection) -> None:
    """Create a package on a SIM and print it."""
    _require_credentials(conn)

    async def go() -> Any:
        async with _open_client(conn) as (client, _):
            return await client.packages.create(
                sim=sim, package_template=template, time_allowance=time_allowance
            )

    _print_json(unstructure(_run(go())))


def _action(action: str, package_id: str, conn: Connection) -> None:
    _require_credentials(conn)

    async def go() -> None:
        async with _open_client(conn) as (client, _):
            await getattr(client.packages, action)(package_id)

    _run(go())
    _print_json({"id": package_id, "action": action, "ok": True})


@packages.command("activate", epilog=_FRESH_SANDBOX_HELP)
@click.argument("package_id", metavar="ID")
@connection_options
def packages_activate(*, package_id: str, conn: Connection) -> None:
    """Activate a package."""
    _action("activate", package_id, conn)


@packages.command("terminate", epilog=_FRESH_SANDBOX_HELP)
@click.argument("package_id", metavar="ID")
@connection_options
def packages_terminate(*, package_id: str, conn: Connection) -> None:
    """Terminate a package."""
    _action("terminate", package_id, conn)


@cli.group(cls=_Group)
def sims() -> None:
    """Look up SIMs (JSON on standard output)."""


@sims.command("get", epilog=_FRESH_SANDBOX_HELP)
@click.argument("iccid")
@connection_options
def sims_get(*, iccid: str, conn: Connection) -> None:
    """Print one SIM."""
    _require_credentials(conn)

    async def go() -> Any:
        async with _open_client(conn) as (client, _):
            return await client.sims.get(iccid)

    _print_json(unstructure(_run(go())))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status (see the module docstring).
    """
    try:
        cli.main(args=None if argv is None else list(argv), prog_name="betatel-async")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        click.echo(str(code), err=True)
        return 1
