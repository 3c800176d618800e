"""Capped exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter")."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempt``-th failure (1-based).

    Half of the capped exponential delay is kept and the other half is jittered, so retries spread out
    without ever collapsing to zero (which would hammer a provider that just failed).
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    jitter = (rng or random).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter
