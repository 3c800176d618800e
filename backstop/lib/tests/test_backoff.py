"""Capped exponential backoff with jitter: grows, never exceeds the cap, never collapses towards zero."""

from __future__ import annotations

import itertools
import random

import pytest

from backstop.lib.backoff import backoff_delay


def delays(attempt: int, *, base: float = 1.0, cap: float = 60.0, samples: int = 500) -> list[float]:
    rng = random.Random(attempt)
    return [backoff_delay(attempt, base=base, cap=cap, rng=rng) for _ in range(samples)]


@pytest.mark.parametrize("attempt", range(1, 15))
def test_it_stays_between_half_the_ceiling_and_the_ceiling(attempt: int) -> None:
    ceiling = min(60.0, 1.0 * 2 ** (attempt - 1))
    for delay in delays(attempt):
        assert ceiling / 2 <= delay <= ceiling


def test_it_never_exceeds_the_cap_however_many_attempts() -> None:
    for attempt in (10, 50, 1000):
        assert max(delays(attempt, base=0.5, cap=30.0)) <= 30.0
        assert min(delays(attempt, base=0.5, cap=30.0)) >= 15.0


def test_it_grows_with_each_failure_until_the_cap() -> None:
    ceilings = [max(delays(attempt, cap=64.0)) for attempt in range(1, 8)]
    floors = [min(delays(attempt, cap=64.0)) for attempt in range(1, 8)]
    for earlier, later in itertools.pairwise(floors):
        assert later > earlier
    assert ceilings[-1] <= 64.0
    # Once capped it stays capped: attempts 8 and 20 wait within the same band.
    assert min(delays(8, cap=64.0)) >= 32.0 and max(delays(20, cap=64.0)) <= 64.0


def test_it_spreads_retries_out_instead_of_repeating_one_delay() -> None:
    assert len({round(delay, 6) for delay in delays(5)}) > 100


def test_it_uses_the_module_random_source_when_none_is_given() -> None:
    delay = backoff_delay(3, base=0.1, cap=10.0)
    assert 0.2 <= delay <= 0.4


@pytest.mark.parametrize("attempt", [0, -1])
def test_it_counts_attempts_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay(attempt, base=1.0, cap=10.0)
