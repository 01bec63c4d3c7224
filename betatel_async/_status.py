"""SIM inventory statistics, in the manner of TelecomX's ``GET /sim/status``.

Strategy: [`StatusAccumulator`][betatel_async.StatusAccumulator] is pure (no I/O, no clock until
[`result()`][betatel_async.StatusAccumulator.result]) and is fed one SIM at a time by a scan
(``client.sims.status()``), so it works on a registry of any size in memory
proportional to the number of distinct holders, networks, statuses and groups,
not SIMs. ``add()`` runs once per SIM, hundreds of thousands of times, so it
does the least it can: it counts raw keys (status members or text, sponsor ids,
group ids) in plain dicts, one ``(network, status)`` cell per SIM and network.
Everything else (network totals, holder totals, the overall counts, string
keys, sorting) is derived once in ``result()``, so every total in the report
is a sum of the counts beside it by construction. TelecomX's own example shows
``"total": 0`` beside non-zero counts; this report never does.

Keys of the report's dicts are strings, so it serialises to JSON as is:

- status: the SIM's ``sim_status`` text (``"IN_SERVICE"``; an unknown status
  keeps its text); `NONE_KEY` when the SIM has none (a status sent as
  the text ``"none"`` is counted with those).
- network: ``str(sponsor_id)`` of the SIM's IMSIs. A SIM with IMSIs from
  several sponsors counts once under each of them (so network totals may add up
  to more than the SIM total); several IMSIs from one sponsor count once. A SIM
  without IMSIs, or an IMSI without a sponsor id, counts under `NONE_KEY`.
- group: ``str(group.id)``, or `NONE_KEY` for a SIM in no group.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from ._models import Sim

__all__ = [
    "NONE_KEY",
    "HolderStatus",
    "NetworkCounts",
    "SimStatusReport",
    "StatusAccumulator",
]

NONE_KEY: Final = "none"
"""The key counting SIMs without a status, a network (IMSI sponsor) or a group."""


@attrs.define(slots=True, kw_only=True)
class NetworkCounts:
    """SIMs on one network (IMSI sponsor).

    Attributes:
        total: SIMs with an IMSI of this sponsor; always ``sum(by_status.values())``.
        by_status: SIMs per ``sim_status`` text.
    """

    total: int = 0
    by_status: dict[str, int] = attrs.Factory(dict)

    def to_dict(self) -> dict[str, Any]:
        """This object as JSON-ready data."""
        return {"total": self.total, "by_status": dict(self.by_status)}


@attrs.define(slots=True, kw_only=True)
class HolderStatus:
    """The SIMs of one holder: a company, and an inventory within it.

    Ids and names come from the SIMs' ``company`` and ``inventory`` references.
    A ``None`` id means the SIMs carried no such reference; a ``None`` name
    means they carried a bare id (the API's "partial" SIM shape) only.

    Attributes:
        company_id: The company's id, or ``None``.
        company_name: The company's name, if any SIM sent it.
        inventory_id: The inventory's id, or ``None``.
        inventory_name: The inventory's name, if any SIM sent it.
        total: SIMs of this holder; the sum of ``by_status`` and of ``by_group``.
        by_network: Counts per network (IMSI sponsor id as text, or ``"none"``).
        by_status: SIMs per status.
        by_group: SIMs per group id (as text, or ``"none"``).
    """

    company_id: int | None
    company_name: str | None
    inventory_id: int | None
    inventory_name: str | None
    total: int
    by_network: dict[str, NetworkCounts]
    by_status: dict[str, int]
    by_group: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """This holder as JSON-ready data."""
        return {
            "company_id": self.company_id,
            "company_name": self.company_name,
            "inventory_id": self.inventory_id,
            "inventory_name": self.inventory_name,
            "total": self.total,
            "by_network": {key: counts.to_dict() for key, counts in self.by_network.items()},
            "by_status": dict(self.by_status),
            "by_group": dict(self.by_group),
        }


@attrs.define(slots=True, kw_only=True)
class SimStatusReport:
    """SIM inventory statistics: one row per holder, and overall counts.

    Attributes:
        holders: One row per (company, inventory), sorted by ``company_id`` then
            ``inventory_id`` (``None`` first).
        total: Every SIM counted; the sum of the holders' totals and of ``by_status``.
        by_status: SIMs per status, over all holders.
        by_network: Counts per network over all holders (each the sum of the
            holders' counts for that network).
        generated_at: When the report was made (aware, UTC).
    """

    holders: list[HolderStatus]
    total: int
    by_status: dict[str, int]
    by_network: dict[str, NetworkCounts]
    generated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``generated_at`` as ISO 8601 text)."""
        return {
            "generated_at": self.generated_at.isoformat(),
            "total": self.total,
            "by_status": dict(self.by_status),
            "by_network": {key: counts.to_dict() for key, counts in self.by_network.items()},
            "holders": [holder.to_dict() for holder in self.holders],
        }


class _Tally:
    """Raw counts of one holder, keyed as they come off the SIMs. Private."""

    __slots__ = ("cells", "company_name", "groups", "inventory_name", "statuses")

    def __init__(self, company_name: str | None, inventory_name: str | None) -> None:
        self.company_name = company_name
        self.inventory_name = inventory_name
        # (sponsor id or None, status as sent) -> SIMs; statuses are StrEnum
        # members or str, which hash and compare alike, so they share a cell.
        self.cells: dict[tuple[int | None, object], int] = {}
        self.statuses: dict[object, int] = {}
        self.groups: dict[int | None, int] = {}


def _text(key: object) -> str:
    return NONE_KEY if key is None else str(key)


def _order(key: str) -> tuple[int, int, str]:
    """Sort numeric keys by value, then other text, then ``"none"`` last."""
    if key == NONE_KEY:
        return (2, 0, key)
    if key.isascii() and key.isdigit():
        return (0, int(key), key)
    return (1, 0, key)


def _sorted(counts: Mapping[str, int]) -> dict[str, int]:
    return {key: counts[key] for key in sorted(counts, key=_order)}


def _bump(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def _networks(networks: Mapping[str, Mapping[str, int]]) -> dict[str, NetworkCounts]:
    # Totals are computed here, from the counts they sum, and nowhere else.
    return {
        key: NetworkCounts(total=sum(networks[key].values()), by_status=_sorted(networks[key]))
        for key in sorted(networks, key=_order)
    }


class StatusAccumulator:
    """Counts SIMs one at a time into a [`SimStatusReport`][betatel_async.SimStatusReport]. Pure.

    ::

        acc = StatusAccumulator()
        for sim in sims:
            acc.add(sim)
        report = acc.result()

    ``result()`` may be called at any time, and again after more ``add()``\\ s.
    """

    __slots__ = ("_holders",)

    def __init__(self) -> None:
        self._holders: dict[tuple[int | None, int | None], _Tally] = {}

    def add(self, sim: Sim) -> None:
        """Count one SIM (called once per SIM of a scan: keep it lean)."""
        company = sim.company
        inventory = sim.inventory
        key = (
            None if company is None else company.id,
            None if inventory is None else inventory.id,
        )
        tally = self._holders.get(key)
        if tally is None:
            tally = self._holders[key] = _Tally(
                None if company is None else company.name,
                None if inventory is None else inventory.name,
            )
        else:
            # The same holder may come as a bare id on one page and with its
            # name on another (the API's two SIM shapes): keep the first name seen.
            if tally.company_name is None and company is not None:
                tally.company_name = company.name
            if tally.inventory_name is None and inventory is not None:
                tally.inventory_name = inventory.name
        status = sim.sim_status
        statuses = tally.statuses
        statuses[status] = statuses.get(status, 0) + 1
        cells = tally.cells
        imsis = sim.imsis
        if not imsis:
            cell: tuple[int | None, object] = (None, status)
            cells[cell] = cells.get(cell, 0) + 1
        elif len(imsis) == 1:
            cell = (imsis[0].sponsor_id, status)
            cells[cell] = cells.get(cell, 0) + 1
        else:
            for sponsor in {imsi.sponsor_id for imsi in imsis}:
                cell = (sponsor, status)
                cells[cell] = cells.get(cell, 0) + 1
        group = sim.group
        group_id = None if group is None else group.id
        groups = tally.groups
        groups[group_id] = groups.get(group_id, 0) + 1

    def result(self) -> SimStatusReport:
        """The report of every SIM added so far, stamped with the current UTC time."""
        holders: list[HolderStatus] = []
        overall_status: dict[str, int] = {}
        overall_network: dict[str, dict[str, int]] = {}
        for (company_id, inventory_id), tally in sorted(self._holders.items(), key=_holder_order):
            networks: dict[str, dict[str, int]] = {}
            for (sponsor, status), n in tally.cells.items():
                network = _text(sponsor)
                _bump(networks.setdefault(network, {}), _text(status), n)
                _bump(overall_network.setdefault(network, {}), _text(status), n)
            by_status: dict[str, int] = {}
            for status, n in tally.statuses.items():
                _bump(by_status, _text(status), n)
                _bump(overall_status, _text(status), n)
            by_group: dict[str, int] = {}
            for group, n in tally.groups.items():
                _bump(by_group, _text(group), n)
            holders.append(
                HolderStatus(
                    company_id=company_id,
                    company_name=tally.company_name,
                    inventory_id=inventory_id,
                    inventory_name=tally.inventory_name,
                    total=sum(by_status.values()),
                    by_network=_networks(networks),
                    by_status=_sorted(by_status),
                    by_group=_sorted(by_group),
                )
            )
        return SimStatusReport(
            holders=holders,
            total=sum(overall_status.values()),
            by_status=_sorted(overall_status),
            by_network=_networks(overall_network),
            generated_at=datetime.now(UTC),
        )


def _holder_order(item: tuple[tuple[int | None, int | None], _Tally]) -> tuple[Hashable, ...]:
    (company_id, inventory_id), _ = item
    return (company_id is not None, company_id or 0, inventory_id is not None, inventory_id or 0)
