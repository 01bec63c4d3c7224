"""The one exception of the sandbox's rules, apart so that every rule module can raise it."""

from __future__ import annotations

__all__ = ["SandboxError"]


class SandboxError(Exception):
    """An API error: the sandbox answers it as ``{"message": message, "statusCode": status}``.

    Raised by the `SandboxData` operations (``create_package`` and friends) so that
    the same rule gives the same error whether it is reached over HTTP or called
    directly.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
