"""Every API path the SDK calls, in one place (a correction is a one-line change)."""

from __future__ import annotations

from typing import Final

__all__ = ["PATHS"]

PATHS: Final = {
    "inventories": "/api/v1/esim/inventories",
    "sims": "/api/v1/esim/sim-registries",
    "sim": "/api/v1/esim/sim-registries/{iccid}",
    "packages": "/api/v1/esim/packages",
    "package": "/api/v1/esim/packages/{id}",
    "activate": "/api/v1/esim/packages/{id}/activate",
    "terminate": "/api/v1/esim/packages/{id}/terminate",
    "package_templates": "/api/v1/esim/package-templates",
    "package_template": "/api/v1/esim/package-templates/{id}",
    "countries": "/api/v1/esim/countries",
    "euicc_profile": "/api/v1/esim/euicc-profiles/{iccid}",
    "euicc_qr_code": "/api/v1/esim/euicc-profiles/{iccid}/qrcode",
    "pcr_profile": "/api/v1/esim/sim-pcr-profiles/{iccid}",
    "status": "/api/v1/status",
}
"""Every API path the SDK calls, relative to the base URL.

The 17 operations of API 1.0.4 use these 14 paths: ``packages`` is listed
(GET) and created in (POST), ``package_templates`` likewise, and
``pcr_profile`` is read (GET) and replaced (PUT).

Every path, ``status`` included, is appended to the client's ``base_url``,
path prefix and all. The API documents its health check "from the host root",
meaning beside ``/api/v1/esim`` rather than below it; a base URL with a prefix
(a gateway that mounts the API at ``https://gw.example/betatel``) mounts the
health check under the same prefix, as it mounts everything else.
"""
