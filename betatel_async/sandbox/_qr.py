"""The QR image that installs an eSIM: a PNG of its LPA activation code."""

from __future__ import annotations

import io
from typing import Final

__all__ = ["FALLBACK_PNG", "qr_png"]

#: Served without segno: a valid PNG (one white pixel, 1-bit greyscale) that
#: holds no code. Clients see an image; only its content is a placeholder.
FALLBACK_PNG: Final = (
    b"\x89PNG\r\n\x1a\n"
    b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x01\x00\x00\x00\x007n\xf9$"
    b"\x00\x00\x00\nIDATx\xdach\x00\x00\x00\x82\x00\x81\xdaE\x08;"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)
# Pixels per module, and the quiet zone in modules (4 is the QR standard's minimum).
_SCALE = 4
_BORDER = 4


def qr_png(text: str) -> bytes:
    """A PNG QR code of ``text`` (error correction level M), or `FALLBACK_PNG` without segno.

    segno is imported here, not at module level: it comes with the ``cli`` and
    ``test`` extras only, and the sandbox must run without it.
    """
    try:
        import segno
    except ImportError:
        return FALLBACK_PNG
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="png", scale=_SCALE, border=_BORDER)
    return buffer.getvalue()
