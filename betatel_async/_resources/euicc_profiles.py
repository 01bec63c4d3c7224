"""``client.euicc_profiles``: what installs an eSIM on a device (eUICC profile, QR code)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from .._converter import decode_model
from .._errors import MalformedResponseError
from .._models import EuiccProfile
from .._validate import check_iccid, path_segment
from ._paths import PATHS

if TYPE_CHECKING:
    from .._transport import Transport

__all__ = ["EuiccProfiles", "is_image"]

# The magic numbers of the formats a QR code is served in.
_IMAGE_MAGIC: Final = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


# An SVG document: the root element is <svg>, after an optional XML
# declaration, comments and doctype. An HTML page with an inline <svg> is not one.
_SVG: Final = re.compile(
    rb"(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype\s+svg[^>]*>\s*)?(?:<!--.*?-->\s*)*<svg[\s>/]",
    re.IGNORECASE | re.DOTALL,
)


def _lead(body: bytes) -> bytes:
    """The start of ``body`` past a UTF-8 BOM and white space, where a text format shows itself."""
    return body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")


def _is_text(body: bytes) -> bool:
    """Whether ``body`` starts as JSON or markup does (and so is no image in another format)."""
    return _lead(body)[:1] in (b"{", b"[", b"<")


def is_image(body: bytes) -> bool:
    """Whether ``body`` starts as a PNG, JPEG, GIF or SVG image does."""
    if body.startswith(_IMAGE_MAGIC):
        return True
    return _SVG.match(_lead(body)) is not None


class EuiccProfiles:
    """``client.euicc_profiles``: an eSIM's eUICC profile and the QR code that installs it."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @staticmethod
    def _path(key: str, iccid: str) -> str:
        return PATHS[key].format(iccid=path_segment("iccid", check_iccid("iccid", iccid)))

    async def get(self, iccid: str) -> EuiccProfile:
        """The eUICC profile of an eSIM: its ``state``, LPA ``activation_code``, ``eid``, ...

        An answer in the older documented shape ``{"profile": {...}}`` is
        unwrapped.

        Args:
            iccid: The SIM's ICCID, 18 to 22 digits (the API documents 19 to
                20; no Luhn check).

        Raises:
            InvalidArgumentError: ``iccid`` is not 18 to 22 digits (before any request).
            NotFoundError: No such profile.
            MalformedResponseError: The answer lacks a required field or has
                one of the wrong type (named).
        """
        path = self._path("euicc_profile", iccid)
        response = await self._transport.request("GET", path, template=PATHS["euicc_profile"])
        return decode_model(response.data, EuiccProfile, method="GET", path=self._transport.url_path(path))

    async def qr_code(self, iccid: str) -> bytes:
        """The QR code image that installs the eSIM, exactly as served (PNG in the common case).

        The image encodes the profile's LPA activation code; write the bytes
        to a file or serve them as they are. The API does not state the
        format: the answer is accepted when its ``Content-Type`` is
        ``image/*`` or its bytes start as a PNG, JPEG, GIF or SVG image does;
        a JSON or markup body is refused whatever its ``Content-Type`` says
        (an error page mislabelled as an image).

        Args:
            iccid: As `get()`.

        Raises:
            InvalidArgumentError: ``iccid`` is not 18 to 22 digits (before any request).
            NotFoundError: No such profile.
            MalformedResponseError: The answer is empty, or is not an image
                (neither an ``image/*`` content type nor image bytes).
        """
        path = self._path("euicc_qr_code", iccid)
        response = await self._transport.request("GET", path, parse=False, template=PATHS["euicc_qr_code"])
        body: bytes = response.data
        if not body or not (
            is_image(body) or (response.content_type.startswith("image/") and not _is_text(body))
        ):
            what = (
                "an empty body" if not body else f"{response.content_type or 'no content type'}, not an image"
            )
            raise MalformedResponseError(
                f"the QR code answer is {what}",
                status=response.status,
                method="GET",
                path=self._transport.url_path(path),
            )
        return body
