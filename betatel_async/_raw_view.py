"""``client.with_raw_response``: the client's single-request methods, each returning a [`RawResponse`][betatel_async.RawResponse].

Strategy: one implementation. Each namespace here holds the plain resource's
bound methods wrapped by `raw_method()`, whose
``ParamSpec`` keeps every parameter's type, so ``with_raw_response.sims.get``
takes what ``sims.get`` takes and returns ``RawResponse[Sim]``. Scans
(``pages``, ``iter``, ``all``, ``status``, ``export``) are not here: they
report through ``ScanReport``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._response import raw_method

if TYPE_CHECKING:
    from ._client import BetatelClient
    from ._resources import (
        Countries,
        EuiccProfiles,
        Inventories,
        Packages,
        PackageTemplates,
        PcrProfiles,
        Sims,
    )

__all__ = ["BetatelClientWithRawResponse"]


class InventoriesWithRawResponse:
    """``client.with_raw_response.inventories``: ``list``."""

    def __init__(self, inventories: Inventories) -> None:
        self.list = raw_method(inventories.list)


class SimsWithRawResponse:
    """``client.with_raw_response.sims``: ``list``, ``get``."""

    def __init__(self, sims: Sims) -> None:
        self.list = raw_method(sims.list)
        self.get = raw_method(sims.get)


class PackagesWithRawResponse:
    """``client.with_raw_response.packages``: ``list``, ``get``, ``create``, ``activate``, ``terminate``."""

    def __init__(self, packages: Packages) -> None:
        self.list = raw_method(packages.list)
        self.get = raw_method(packages.get)
        self.create = raw_method(packages.create)
        self.activate = raw_method(packages.activate)
        self.terminate = raw_method(packages.terminate)


class PackageTemplatesWithRawResponse:
    """``client.with_raw_response.package_templates``: ``list``, ``get``, ``create``."""

    def __init__(self, templates: PackageTemplates) -> None:
        self.list = raw_method(templates.list)
        self.get = raw_method(templates.get)
        self.create = raw_method(templates.create)


class CountriesWithRawResponse:
    """``client.with_raw_response.countries``: ``list``."""

    def __init__(self, countries: Countries) -> None:
        self.list = raw_method(countries.list)


class EuiccProfilesWithRawResponse:
    """``client.with_raw_response.euicc_profiles``: ``get``, ``qr_code``."""

    def __init__(self, profiles: EuiccProfiles) -> None:
        self.get = raw_method(profiles.get)
        self.qr_code = raw_method(profiles.qr_code)


class PcrProfilesWithRawResponse:
    """``client.with_raw_response.pcr_profiles``: ``get``, ``update``."""

    def __init__(self, profiles: PcrProfiles) -> None:
        self.get = raw_method(profiles.get)
        self.update = raw_method(profiles.update)


class BetatelClientWithRawResponse:
    """A view of a client whose single-request methods return [`RawResponse`][betatel_async.RawResponse]::

        raw = await client.with_raw_response.packages.get("pkg_123456")
        raw.status, raw.request_id, raw.headers["Content-Type"]
        package = raw.parse()

    It shares everything with the client it came from (session, limits,
    retry budget, options, lifetime). Every ``list``, ``get``, ``create``,
    ``activate``, ``terminate``, ``update``, ``qr_code`` and ``api_status`` is
    here; the scans are not.
    """

    def __init__(self, client: BetatelClient) -> None:
        self.inventories = InventoriesWithRawResponse(client.inventories)
        self.sims = SimsWithRawResponse(client.sims)
        self.packages = PackagesWithRawResponse(client.packages)
        self.package_templates = PackageTemplatesWithRawResponse(client.package_templates)
        self.countries = CountriesWithRawResponse(client.countries)
        self.euicc_profiles = EuiccProfilesWithRawResponse(client.euicc_profiles)
        self.pcr_profiles = PcrProfilesWithRawResponse(client.pcr_profiles)
        self.api_status = raw_method(client.api_status)
