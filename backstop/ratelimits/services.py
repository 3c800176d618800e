from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from django.conf import settings

from backstop.ratelimits.models import Counter


@dataclass(frozen=True)
class Limit:
    per_ip: int
    per_email: int
    window_seconds: int


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.0f}s")
        self.retry_after = math.ceil(retry_after)

    @property
    def minutes(self) -> int:
        """The wait in whole minutes, rounded up: whoever waits as long as they are told is let in."""
        return max(1, math.ceil(self.retry_after / 60))


def check_rate_limit(*, action: str, limit: Limit, ip: str, email_key: str | None) -> None:
    """Count one attempt at ``action`` from ``ip`` for ``email_key``; raise RateLimited past the limit."""
    scale = settings.RATE_LIMIT_SCALE
    if scale == 0:
        return
    waits = [Counter.objects.hit(f"{action}:ip:{ip}", limit=math.ceil(limit.per_ip * scale),
                                 window_seconds=limit.window_seconds)]
    if email_key:
        # Hashed: an address (up to 254 characters, or anything typed at sign-in) always fits the key column.
        email_digest = hashlib.sha256(email_key.encode()).hexdigest()
        waits.append(Counter.objects.hit(f"{action}:email:{email_digest}", limit=math.ceil(limit.per_email * scale),
                                         window_seconds=limit.window_seconds))
    if max(waits) > 0:
        raise RateLimited(max(waits))
