"""A SIM's eUICC profile (what installs the eSIM) and PCR profile (its data, voice and SMS policy).

Strategy: nothing here is generated with the SIMs. Each profile is drawn on
demand from a ``random.Random`` seeded with the data's seed and the ICCID, so
it is the same on every read, the same for the same seed, costs nothing for
SIMs nobody asks about, and exists for SIMs inserted later too. Only a PCR
profile's changes (``PUT``) are stored, by `SandboxData`, on top of the drawn one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Final

from ._errors import SandboxError

__all__ = [
    "EUICC_STATES",
    "PROFILE_REUSE_TYPES",
    "SERVICE_STATES",
    "SMDP_ADDRESS",
    "THROTTLING_SPEEDS",
    "WALLET_MODES",
    "WALLET_TYPES",
    "check_pcr_update",
    "draw_euicc_profile",
    "draw_pcr_profile",
]

Row = dict[str, Any]

EUICC_STATES: Final = (
    "AVAILABLE", "CONFIRMED", "ALLOCATED", "LINKED", "DOWNLOADED", "RELEASED",
    "INSTALLED", "ENABLED", "DISABLED", "ERROR", "DELETED", "UNAVAILABLE",
)  # fmt: skip
PROFILE_REUSE_TYPES: Final = ("NEW_EID_MID", "NEW_EID", "SAME_EID", "SAME_EID_MID")
SERVICE_STATES: Final = ("ENABLED", "DISABLED")
THROTTLING_SPEEDS: Final = (
    "NO_LIMIT", "SPEED_100_KBPS", "SPEED_500_KBPS", "SPEED_1000_KBPS",
    "SPEED_2000_KBPS", "SPEED_3000_KBPS", "SPEED_5000_KBPS",
)  # fmt: skip
WALLET_MODES: Final = ("GROUP", "SIM")
WALLET_TYPES: Final = ("GROUP", "INVENTORY", "SIM")
#: The SM-DP+ named in every activation code: ``.invalid`` is reserved (RFC 2606),
#: so a phone given a sandbox QR code can never reach a real server.
SMDP_ADDRESS: Final = "smdp.sandbox.invalid"

# The eUICC states a SIM's status makes plausible: a profile is downloaded and
# installed only once the SIM is in service, and gone once it is terminated.
_STATES_BY_SIM_STATUS: Final[Mapping[str, tuple[str, ...]]] = {
    "WAITING_FOR_ASSIGNMENT": ("AVAILABLE", "CONFIRMED", "ALLOCATED", "LINKED"),
    "PRE_SERVICE": ("RELEASED", "DOWNLOADED", "ERROR"),
    "IN_SERVICE": ("INSTALLED", "ENABLED", "ENABLED", "DISABLED"),
    "TERMINATED": ("DELETED", "UNAVAILABLE"),
}
# States in which a device has held the profile, so its EID is known.
_ON_A_DEVICE: Final = frozenset(("DOWNLOADED", "INSTALLED", "ENABLED", "DISABLED", "DELETED"))
# Matching IDs in the wild are upper-case letters and digits in dash-separated groups.
_MATCHING_ID_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_GB = 1024**3


def _rng(seed: int, iccid: str, what: str) -> random.Random:
    # A string seed is hashed with SHA-512: the same on every run and platform
    # (unlike hash(), which PYTHONHASHSEED randomises).
    return random.Random(f"{seed}/{what}/{iccid}")


def draw_euicc_profile(seed: int, sim: Mapping[str, Any]) -> Row:
    """The eUICC profile of a SIM, as ``GET /euicc-profiles/{iccid}`` answers it.

    Args:
        seed: The data's seed.
        sim: The SIM's row (``iccid``, ``sim_status``, ``mapped_imsi``, ``modified_date``).

    Returns:
        Every required field of the models file's ``GetEUICCProfileResponse``
        (``imsi`` as a string, ``last_operation_date`` in seconds as the SIMs'
        dates); the optional ones on some SIMs only: the reuse fields on about
        half, ``eid`` and ``release_date`` once a device has held the profile,
        ``cc_required``/``cc_retries`` on about a third.
    """
    iccid: str = sim["iccid"]
    rng = _rng(seed, iccid, "euicc")
    state = rng.choice(_STATES_BY_SIM_STATUS.get(sim["sim_status"], EUICC_STATES))
    matching_id = "-".join("".join(rng.choice(_MATCHING_ID_ALPHABET) for _ in range(5)) for _ in range(4))
    last_operation: int = sim["modified_date"]
    profile: Row = {
        "iccid": iccid,
        "imsi": str(sim["mapped_imsi"]),
        "state": state,
        "last_operation_date": last_operation,
        "activation_code": f"LPA:1${SMDP_ADDRESS}${matching_id}",
    }
    if rng.random() < 0.5:
        max_count = rng.randint(1, 10)
        profile["reuse_enabled"] = rng.random() < 0.7
        profile["reuse_remaining_count"] = rng.randint(0, max_count)
        profile["profile_reuse_policy"] = {
            "reuse_type": rng.choice(PROFILE_REUSE_TYPES),
            "max_count": max_count,
        }
    if state in _ON_A_DEVICE:
        # An EID is 32 digits and starts with 89 (GSMA SGP.02).
        profile["eid"] = "89049032" + "".join(rng.choice("0123456789") for _ in range(24))
        profile["release_date"] = last_operation - rng.randrange(86_400, 30 * 86_400)
    if rng.random() < 0.3:
        profile["cc_required"] = True
        profile["cc_retries"] = rng.randint(0, 5)
    return profile


def draw_pcr_profile(seed: int, sim: Mapping[str, Any], inventory_wallet: int | None) -> Row:
    """The PCR profile of a SIM as generated, before any ``PUT``.

    Args:
        seed: The data's seed.
        sim: The SIM's row in the "objects" shape (``iccid``, ``sim_status``, ``group``).
        inventory_wallet: The ``wallet`` id of the SIM's inventory, or None if
            the inventory is unknown.

    Returns:
        Every field of the models file's ``GetPCRProfileResponse``:
        ``route_policy`` on about 40 % of SIMs; one GROUP or SIM wallet (as
        ``wallet_mode`` says), plus the inventory's wallet on about half. A
        GROUP wallet is the same for every SIM of the group.
    """
    iccid: str = sim["iccid"]
    rng = _rng(seed, iccid, "pcr")
    terminated = sim["sim_status"] == "TERMINATED"
    data_on = not terminated and rng.random() < 0.9
    throttling = "NO_LIMIT" if rng.random() < 0.7 else rng.choice(THROTTLING_SPEEDS[1:])
    wallet_mode = rng.choice(WALLET_MODES)
    group_id: int = sim["group"]["id"]
    if wallet_mode == "GROUP":
        wallet = _wallet(70_000_000 + group_id, {"group": group_id}, "GROUP", random.Random(group_id))
    else:
        wallet = _wallet(rng.randrange(10**8, 10**9), {"sim": iccid}, "SIM", rng)
    wallets = [wallet]
    if inventory_wallet is not None and rng.random() < 0.5:
        wallets.append(
            _wallet(
                inventory_wallet,
                {"inventory": sim["inventory"]["id"]},
                "INVENTORY",
                random.Random(inventory_wallet),
            )
        )
    profile: Row = {
        "sim": iccid,
        "data": {"state": "ENABLED" if data_on else "DISABLED", "active_throttling": throttling},
        "voice": {"state": "DISABLED" if terminated or rng.random() < 0.2 else "ENABLED"},
        "sms": {"state": "DISABLED" if terminated or rng.random() < 0.1 else "ENABLED"},
        "wallets": wallets,
        "wallet_mode": wallet_mode,
    }
    if rng.random() < 0.4:
        profile["route_policy"] = rng.randint(1, 5)
    return profile


def _wallet(wallet_id: int, owner: Row, wallet_type: str, rng: random.Random) -> Row:
    return {
        "id": wallet_id,
        "owner": owner,
        "balance": rng.randrange(0, 50 * _GB),  # bytes of data left
        "overdraft": rng.choice((0, 0, 0, _GB)),
        "wallet_type": wallet_type,
    }


def check_pcr_update(body: object) -> Row:
    """The modifiable part of a PCR profile from a ``PUT`` body, checked.

    The body is the whole modifiable profile: ``data {state,
    active_throttling}``, ``voice {state}``, ``sms {state}``, ``wallet_mode``
    and optionally ``route_policy`` (an int >= 0; absent or null clears it).
    Other fields (``sim``, ``wallets`` sent back from a GET) are ignored.

    Returns:
        ``{data, voice, sms, wallet_mode, route_policy}`` with exactly the
        checked values (``route_policy`` None when cleared).

    Raises:
        SandboxError: 400 naming the first field, by dotted path, that is
            missing or outside its documented set.
    """
    if not isinstance(body, dict):
        raise SandboxError(400, "Request body must be a JSON object")
    data = _section(body, "data", {"state": SERVICE_STATES, "active_throttling": THROTTLING_SPEEDS})
    voice = _section(body, "voice", {"state": SERVICE_STATES})
    sms = _section(body, "sms", {"state": SERVICE_STATES})
    wallet_mode = _one_of(body.get("wallet_mode"), "wallet_mode", WALLET_MODES)
    route_policy = body.get("route_policy")
    if route_policy is not None and (
        not isinstance(route_policy, int) or isinstance(route_policy, bool) or route_policy < 0
    ):
        raise SandboxError(400, f"Field 'route_policy' must be an integer >= 0 or null, got {route_policy!r}")
    return {
        "data": data,
        "voice": voice,
        "sms": sms,
        "wallet_mode": wallet_mode,
        "route_policy": route_policy,
    }


def _section(body: Mapping[str, object], name: str, fields: Mapping[str, tuple[str, ...]]) -> Row:
    section = body.get(name)
    if not isinstance(section, dict):
        raise SandboxError(400, f"Field '{name}' is required: an object with {', '.join(fields)}")
    return {key: _one_of(section.get(key), f"{name}.{key}", allowed) for key, allowed in fields.items()}


def _one_of(value: object, path: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise SandboxError(400, f"Field '{path}' must be one of {', '.join(allowed)}, got {value!r}")
    return value
