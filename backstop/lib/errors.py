"""Errors shared by every app: input refused field by field, and what a provider adapter raises, worded so it can
be shown as it is, to support staff and to the customer on the setup page (so never an exception's class name)."""

from __future__ import annotations

import datetime as dt
import email.utils
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


class ProviderThrottled(ProviderError):
    """The provider asked us to come back later (HTTP 429 or 503 with Retry-After): ``retry_after`` seconds from now.

    The breaker holds every call to the provider until then without counting a failure (``runtime.retrying``)."""

    def __init__(self, message: str, *, retry_after: float, stated_rate: float | None = None,
                 rate_limited: bool = True) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # A 429: we called too fast, so callers are paced from now on. A 503's Retry-After is an outage's "not before",
        # which says nothing about a rate.
        self.rate_limited = rate_limited
        # The calls per second the provider said it takes (its ``ratelimit-*`` headers), when it said: the pace every
        # caller keeps to from then on.
        self.stated_rate = stated_rate


class ProviderRefused(ProviderError):
    """The provider answered, and its answer says it did not do it (an HTTP error status): a retry with other content
    under the same idempotency key cannot meet an earlier delivery. A timeout or a dropped connection is no refusal."""


# The statuses whose Retry-After says "not before then": too many requests, and unavailable for a while.
RETRY_AFTER_STATUSES = (429, 503)


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds ("120") or an HTTP date ("Wed, 21 Oct 2026 07:28:00
    GMT", RFC 9110 10.2.3). None when absent or unreadable; a date in the past is 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT; a date without a zone is read as one
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def stated_rate(limit_header: str | None, policy_header: str | None = None) -> float | None:
    """Calls per second from ``RateLimit-Limit`` (calls per window) and ``RateLimit-Policy`` ("10;w=1": the window in
    seconds; the IETF draft's form, which Resend follows). Without a policy the window is one second, as Resend's is.
    None when absent or unreadable."""
    try:
        limit = float((limit_header or "").split(",")[0].split(";")[0].strip())
    except ValueError:
        return None
    window = 1.0
    for part in (policy_header or "").split(",")[0].split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip() == "w":
            try:
                window = float(value)
            except ValueError:
                return None
    return limit / window if limit > 0 and window > 0 else None


def throttled(status: int, retry_after_header: str | None, message: str, *, limit_header: str | None = None,
              policy_header: str | None = None) -> ProviderThrottled | None:
    """The ProviderThrottled for an answer with ``status`` and its Retry-After header, when it asks us to wait (with
    the rate its ``ratelimit-*`` headers state, on a 429)."""
    if status not in RETRY_AFTER_STATUSES:
        return None
    seconds = parse_retry_after(retry_after_header)
    if seconds is None:
        return None
    rate = stated_rate(limit_header, policy_header) if status == 429 else None
    return ProviderThrottled(message, retry_after=seconds, stated_rate=rate, rate_limited=status == 429)


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
