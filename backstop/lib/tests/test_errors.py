from __future__ import annotations

import socket
import ssl

import pytest

from backstop.lib.errors import connection_failure


def wrapped(cause: BaseException) -> Exception:
    """An HTTP client's error raised `from` its transport's, raised `from` the socket's: the shape httpx gives."""
    try:
        try:
            raise cause
        except BaseException as error:
            raise RuntimeError("transport") from error
    except RuntimeError as transport:
        try:
            raise ValueError("client") from transport
        except ValueError as client:
            return client


@pytest.mark.parametrize(("cause", "words"), [
    (ConnectionRefusedError(111, "Connection refused"), "the connection was refused"),
    (socket.gaierror(-2, "Name or service not known"), "its address could not be looked up"),
    (ssl.SSLError(1, "wrong version number"), "the secure connection could not be set up"),
    (ConnectionResetError(104, "Connection reset by peer"), "the connection was dropped"),
    (OSError(113, "No route to host"), "the connection failed"),
])
def test_it_words_the_socket_error_under_a_clients_wrapping(cause: OSError, words: str) -> None:
    assert connection_failure(wrapped(cause)) == words
    assert connection_failure(cause) == words


def test_it_falls_back_to_plain_words_when_no_socket_error_is_in_the_chain() -> None:
    assert connection_failure(ValueError("odd")) == "the connection failed"
