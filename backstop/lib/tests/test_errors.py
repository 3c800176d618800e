from __future__ import annotations

import datetime as dt
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


def test_it_reads_retry_after_in_seconds_and_as_an_http_date() -> None:
    from backstop.lib.errors import parse_retry_after

    now = dt.datetime(2026, 10, 21, 7, 28, 0, tzinfo=dt.UTC)
    assert parse_retry_after("2", now=now) == 2.0
    assert parse_retry_after(" 120 ", now=now) == 120.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2026 07:27:00 GMT", now=now) == 0.0  # already past: no wait
    assert parse_retry_after(None, now=now) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-3", now=now) is None


def test_it_makes_a_throttle_only_of_429_and_503_with_retry_after() -> None:
    from backstop.lib.errors import ProviderThrottled, throttled

    error = throttled(429, "3", "slow down")
    assert isinstance(error, ProviderThrottled) and error.retry_after == 3.0 and str(error) == "slow down"
    assert throttled(503, "1", "down") is not None
    assert throttled(503, None, "down") is None
    assert throttled(500, "3", "broken") is None
