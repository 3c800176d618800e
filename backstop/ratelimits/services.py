from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from django.conf import settings

from backstop.lib.http import rate_limit_address
from backstop.lib.site_messages import Notice
from backstop.ratelimits.models import Counter


@dataclass(frozen=True)
class Limit:
    per_ip: int
    per_email: int
    window_seconds: int


class RateLimited(Exception):
    def __init__(self, retry_after: float, notice: Notice | None = None) -> None:
        super().__init__(f"rate limited for {retry_after:.0f}s")
        self.retry_after = math.ceil(retry_after)
        # How the answer words it ({minutes} filled in); None: the site's RATE_LIMITED.
        self.notice = notice

    def worded(self, notice: Notice) -> RateLimited:
        """The same refusal, said with ``notice`` (a sign-in route names the way in that needs no waiting)."""
        return RateLimited(self.retry_after, notice)

    @property
    def minutes(self) -> int:
        """The wait in whole minutes, rounded up: whoever waits as long as they are told is let in."""
        return max(1, math.ceil(self.retry_after / 60))


def _keys(*, action: str, limit: Limit, ip: str | None, email_key: str | None) -> list[tuple[str, int]]:
    """The counters an attempt at ``action`` touches, each with its (scaled) limit."""
    scale = settings.RATE_LIMIT_SCALE
    keys = []
    if ip:  # an IPv6 address counts by its /64: one network, whichever of its addresses it sends from
        keys.append((f"{action}:ip:{rate_limit_address(ip)}", math.ceil(limit.per_ip * scale)))
    if email_key:
        # Hashed: an address (up to 254 characters, or anything typed at sign-in) always fits the key column.
        email_digest = hashlib.sha256(email_key.encode()).hexdigest()
        keys.append((f"{action}:email:{email_digest}", math.ceil(limit.per_email * scale)))
    return keys


def refuse_spent_budget(*, action: str, limit: Limit, ip: str | None = None, email_key: str | None = None) -> None:
    """Raise RateLimited when ``ip`` or ``email_key`` has already spent its failure budget at ``action``.

    Counts nothing: only failures spend a failure budget (``count_failure``), so a correct attempt never does.
    """
    if settings.RATE_LIMIT_SCALE == 0:
        return
    waits = [Counter.objects.spent(key, limit=key_limit, window_seconds=limit.window_seconds)
             for key, key_limit in _keys(action=action, limit=limit, ip=ip, email_key=email_key)]
    if waits and max(waits) > 0:
        raise RateLimited(max(waits))


def count_failure(*, action: str, limit: Limit, ip: str | None = None, email_key: str | None = None) -> None:
    """Spend one unit of the failure budget of ``ip`` and of ``email_key`` at ``action`` (refusing is left to the
    next attempt's ``refuse_spent_budget``)."""
    if settings.RATE_LIMIT_SCALE == 0:
        return
    for key, key_limit in _keys(action=action, limit=limit, ip=ip, email_key=email_key):
        Counter.objects.hit(key, limit=key_limit, window_seconds=limit.window_seconds)


def claim_attempt(*, key: str, limit: int, window_seconds: int) -> bool:
    """Take one of exactly ``limit`` attempts on ``key`` (never scaled nor switched off: a security bound, such as the
    guesses one address may make at one sign-in code); False once they are all taken."""
    return Counter.objects.claim(key, limit=limit, window_seconds=window_seconds)


def check_rate_limit(*, action: str, limit: Limit, ip: str, email_key: str | None) -> None:
    """Count one attempt at ``action`` from ``ip`` for ``email_key``; raise RateLimited past the limit."""
    if settings.RATE_LIMIT_SCALE == 0:
        return
    waits = [Counter.objects.hit(key, limit=key_limit, window_seconds=limit.window_seconds)
             for key, key_limit in _keys(action=action, limit=limit, ip=ip, email_key=email_key)]
    if waits and max(waits) > 0:
        raise RateLimited(max(waits))
