"""The commands of the rest of the API: package templates, countries, eUICC and PCR profiles, status.

Each is named after the SDK namespace it calls (``package-templates`` is
``client.package_templates``) and prints JSON on standard output, as the
``packages`` and ``sims`` commands do; exit statuses as in `._app`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import click

from .._converter import unstructure
from .._models import ActivationType, Throttling, TimeAllowance, TimeUnit, WalletMode
from .._types import NOT_GIVEN, NotGiven
from ._app import (
    _FRESH_SANDBOX_HELP,
    Connection,
    _Group,
    _open_client,
    _print_json,
    _require_credentials,
    _run,
    cli,
    connection_options,
)

__all__ = ["api_status", "countries", "euicc_profiles", "package_templates", "pcr_profiles"]

_ON_OFF: Final = {"on": "ENABLED", "off": "DISABLED"}


def _call(conn: Connection, method: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``method(client)(*args, **kwargs)`` on a client for ``conn`` and return its result."""
    _require_credentials(conn)

    async def go() -> Any:
        async with _open_client(conn) as (client, _):
            return await method(client)(*args, **kwargs)

    return _run(go())


# ---------------------------------------------------------------- package templates


@cli.group("package-templates", cls=_Group)
def package_templates() -> None:
    """List, get and create package templates (JSON on standard output)."""


@package_templates.command("list")
@click.option("--inventory", type=click.IntRange(min=0), help="Only the templates of this inventory id.")
@connection_options
def package_templates_list(*, inventory: int | None, conn: Connection) -> None:
    """Print every package template (a JSON array)."""
    items = _call(conn, lambda c: c.package_templates.all, inventory=inventory)
    _print_json([unstructure(item) for item in items])


@package_templates.command("get", epilog=_FRESH_SANDBOX_HELP)
@click.argument("template_id", metavar="ID", type=click.IntRange(min=0))
@connection_options
def package_templates_get(*, template_id: int, conn: Connection) -> None:
    """Print one package template."""
    _print_json(unstructure(_call(conn, lambda c: c.package_templates.get, template_id)))


@package_templates.command("create", epilog=_FRESH_SANDBOX_HELP)
@click.option(
    "--name", required=True, help="The template's name (unique names make a lost answer recoverable)."
)
@click.option(
    "--country",
    "countries",
    required=True,
    multiple=True,
    metavar="ISO3",
    help="A supported country, ISO 3166-1 alpha-3 (repeat the option for more).",
)
@click.option(
    "--activation-type",
    required=True,
    type=click.Choice([a.value for a in ActivationType]),
    help="How its packages are activated.",
)
@click.option("--data", "data_usage_allowance", required=True, type=click.IntRange(min=0), metavar="BYTES")
@click.option("--time-unit", required=True, type=click.Choice([u.value for u in TimeUnit]))
@click.option("--time-duration", required=True, type=click.IntRange(min=1), metavar="N")
@click.option(
    "--activation-time-allowance",
    required=True,
    type=click.IntRange(min=0),
    metavar="S",
    help="Seconds a package may wait to be activated.",
)
@click.option("--earliest-available-date", required=True, type=click.IntRange(min=0), metavar="UNIX")
@click.option(
    "--latest-available-date", type=click.IntRange(min=0), default=0, metavar="UNIX", help="0: no end."
)
@click.option("--inventory", required=True, type=click.IntRange(min=0), metavar="ID")
@connection_options
def package_templates_create(
    *,
    name: str,
    countries: tuple[str, ...],
    activation_type: str,
    data_usage_allowance: int,
    time_unit: str,
    time_duration: int,
    activation_time_allowance: int,
    earliest_available_date: int,
    latest_available_date: int,
    inventory: int,
    conn: Connection,
) -> None:
    """Create a package template and print the API's answer."""
    info = _call(
        conn,
        lambda c: c.package_templates.create,
        name=name,
        supported_countries=list(countries),
        activation_type=activation_type,
        data_usage_allowance=data_usage_allowance,
        time_allowance=TimeAllowance(unit=time_unit, duration=time_duration),
        activation_time_allowance=activation_time_allowance,
        earliest_available_date=earliest_available_date,
        latest_available_date=latest_available_date,
        inventory=inventory,
    )
    _print_json(unstructure(info))


# ---------------------------------------------------------------- countries


@cli.group("countries", cls=_Group)
def countries() -> None:
    """The countries the API knows (JSON on standard output)."""


@countries.command("list")
@connection_options
def countries_list(*, conn: Connection) -> None:
    """Print every country: name, iso2, iso3 (a JSON array)."""
    _print_json([unstructure(item) for item in _call(conn, lambda c: c.countries.all)])


# ---------------------------------------------------------------- eUICC profiles


@cli.group("euicc-profiles", cls=_Group)
def euicc_profiles() -> None:
    """What installs an eSIM on a device: its eUICC profile and QR code."""


@euicc_profiles.command("get", epilog=_FRESH_SANDBOX_HELP)
@click.argument("iccid")
@connection_options
def euicc_profiles_get(*, iccid: str, conn: Connection) -> None:
    """Print the eUICC profile of an eSIM (its LPA activation code among it)."""
    _print_json(unstructure(_call(conn, lambda c: c.euicc_profiles.get, iccid)))


@euicc_profiles.command("qr", epilog=_FRESH_SANDBOX_HELP)
@click.argument("iccid")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=False, path_type=Path),
    metavar="FILE",
    help="Where to write the image, exactly as the API serves it.",
)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@connection_options
def euicc_profiles_qr(*, iccid: str, output: Path, force: bool, conn: Connection) -> None:
    """Write the QR code that installs an eSIM to FILE."""
    if output.exists() and not force:
        raise click.UsageError(f"{str(output)!r} exists; pass --force to overwrite it")
    if not output.parent.is_dir():
        raise click.BadParameter(f"directory {str(output.parent)!r} does not exist", param_hint="'--output'")
    image: bytes = _call(conn, lambda c: c.euicc_profiles.qr_code, iccid)
    # Written beside the target and renamed: FILE is never half an image.
    partial = output.with_name(output.name + ".partial")
    try:
        partial.write_bytes(image)
        os.replace(partial, output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
    click.echo(f"Wrote {len(image)} bytes to {output}.", err=True)


# ---------------------------------------------------------------- PCR profiles


@cli.group("pcr-profiles", cls=_Group)
def pcr_profiles() -> None:
    """Read and change what a SIM may use: data, throttling, voice, SMS."""


@pcr_profiles.command("get", epilog=_FRESH_SANDBOX_HELP)
@click.argument("iccid")
@connection_options
def pcr_profiles_get(*, iccid: str, conn: Connection) -> None:
    """Print the PCR profile of a SIM."""
    _print_json(unstructure(_call(conn, lambda c: c.pcr_profiles.get, iccid)))


def _state(value: str | None) -> str | NotGiven:
    return NOT_GIVEN if value is None else _ON_OFF[value]


@pcr_profiles.command("update", epilog=_FRESH_SANDBOX_HELP)
@click.argument("iccid")
@click.option("--throttle", type=click.Choice([t.value for t in Throttling]), help="Data speed limit.")
@click.option("--data", type=click.Choice(list(_ON_OFF)), help="Data service on or off.")
@click.option("--voice", type=click.Choice(list(_ON_OFF)), help="Voice service on or off.")
@click.option("--sms", type=click.Choice(list(_ON_OFF)), help="SMS service on or off.")
@click.option("--wallet-mode", type=click.Choice([m.value for m in WalletMode]), help="Whose wallet pays.")
@connection_options
def pcr_profiles_update(
    *,
    iccid: str,
    throttle: str | None,
    data: str | None,
    voice: str | None,
    sms: str | None,
    wallet_mode: str | None,
    conn: Connection,
) -> None:
    """Change only what is given and print the profile read back.

    A read-modify-write of the whole profile: keep one writer per SIM.
    """
    if throttle is None and data is None and voice is None and sms is None and wallet_mode is None:
        raise click.UsageError("nothing to change: give --throttle, --data, --voice, --sms or --wallet-mode")
    profile = _call(
        conn,
        lambda c: c.pcr_profiles.update,
        iccid,
        data_state=_state(data),
        active_throttling=NOT_GIVEN if throttle is None else throttle,
        voice_state=_state(voice),
        sms_state=_state(sms),
        wallet_mode=NOT_GIVEN if wallet_mode is None else wallet_mode,
    )
    _print_json(unstructure(profile))


# ---------------------------------------------------------------- status


@cli.command("api-status")
@connection_options
def api_status(*, conn: Connection) -> None:
    """Print the API's health: status, version, uptime (needs no credentials)."""
    # The request carries no credentials, but the client is built as for any
    # command (from the environment, or --sandbox).
    _print_json(unstructure(_call(conn, lambda c: c.api_status)))
