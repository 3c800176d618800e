"""Errors shared by every app: input refused field by field, and what a provider adapter raises, worded so it can
be shown as it is, to support staff and to the customer on the setup page (so never an exception's class name)."""

from __future__ import annotations

import socket
import ssl


class InvalidInput(Exception):
    """Input refused: ``errors`` maps each field to the sentence shown next to it (API and HTML forms alike)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{field}: {text}" for field, text in errors.items()))
        self.errors = errors


class ProviderError(Exception):
    """The provider refused or failed the call; retrying later may work."""


class ProviderTimeout(ProviderError):
    """The provider did not answer within the adapter's timeout."""


def connection_failure(error: BaseException) -> str:
    """Why a connection failed, in words: the first OS-level error in the chain (HTTP clients wrap it twice)."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__cause__ or seen.__context__
    if isinstance(seen, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(seen, socket.gaierror):
        return "its address could not be looked up"
    if isinstance(seen, ssl.SSLError):
        return "the secure connection could not be set up"
    if isinstance(seen, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return "the connection was dropped"
    return "the connection failed"
