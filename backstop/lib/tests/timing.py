"""Timing comparisons over real HTTP for the tests that prove an answer's timing says nothing about an address.

Pairs are interleaved (A then B, then B then A, ...) so that whatever slows the machine for a while (another
process, a background workflow) falls on both sides alike; medians, not means, so that one stall does not decide.
Two medians agree when they are within 10% of each other, or within an absolute floor of 3 ms: on numbers of ten or
twenty milliseconds 10% is below what a shared machine's scheduler jitters by, and 3 ms is below what a look-up that
depends on the address costs (the differences the issue reported were 19 ms and more; the old recovery path measured
6-9 ms more here on a loaded machine, so a 5 ms floor would let it through some rounds).

The first quartiles (the fastest quarter of each side) must agree as well: they are what the machine's load disturbs
least, so a cost that depends on the address shows there even when noise hides it in the medians. On a loaded
machine (the test suite beside other work, load far above the cores) one round can still differ from noise alone, so
``compare`` measures up to five rounds of 40 pairs and the answers agree when one round does: a cost that depends on
the address is there in every round, noise is not.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PAIRS = 40
RELATIVE_TOLERANCE = 0.10
ABSOLUTE_FLOOR_SECONDS = 0.003
# A pause between requests, on top of ``settle``.
GAP_SECONDS = 0.02


@dataclass(frozen=True)
class Comparison:
    first: list[float]
    second: list[float]
    answers: list[tuple[Any, Any]]

    @property
    def medians(self) -> tuple[float, float]:
        return statistics.median(self.first), statistics.median(self.second)

    @property
    def fast_quartiles(self) -> tuple[float, float]:
        return _quartile(self.first), _quartile(self.second)

    @property
    def agree(self) -> bool:
        # The medians, as the issue asks; and the fastest quarter of each, the requests the machine's load disturbed
        # least, where a cost that depends on the address shows most plainly (what a patient attacker would read).
        return all(_close(a, b) for a, b in (self.medians, self.fast_quartiles))

    def describe(self) -> str:
        a, b = self.medians
        qa, qb = self.fast_quartiles
        return (f"medians {a * 1000:.1f} ms vs {b * 1000:.1f} ms, first quartiles {qa * 1000:.1f} ms vs "
                f"{qb * 1000:.1f} ms (allowed: 10% or 3 ms); "
                f"first {sorted(round(x * 1000) for x in self.first)}; "
                f"second {sorted(round(x * 1000) for x in self.second)}")


def _quartile(times: list[float]) -> float:
    return statistics.quantiles(times, n=4)[0]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(RELATIVE_TOLERANCE * max(a, b), ABSOLUTE_FLOOR_SECONDS)


def compare_interleaved(first: Callable[[int], Any], second: Callable[[int], Any], *, pairs: int = PAIRS,
                        settle: Callable[[Any], None] = lambda answer: None) -> Comparison:
    """Time ``first(i)`` and ``second(i)`` ``pairs`` times each, interleaved; keep each pair's answers.

    ``settle(answer)``, untimed, waits after each request until the work it left for later is over, so that each
    request is measured on its own path rather than against the background work of the one before (which the
    server's own CPU and write-lock priorities for requests keep small, but which on a loaded test machine is
    noise of tens of milliseconds either way)."""
    times: dict[int, list[float]] = {0: [], 1: []}
    answers = []
    for i in range(pairs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        got: dict[int, Any] = {}
        for side in order:
            call = first if side == 0 else second
            started = time.perf_counter()
            got[side] = call(i)
            times[side].append(time.perf_counter() - started)
            settle(got[side])
            time.sleep(GAP_SECONDS)
        answers.append((got[0], got[1]))
    return Comparison(first=times[0], second=times[1], answers=answers)


ROUNDS = 5  # three were not enough with two whole suites running beside it (noise both ways, 20-40%)


def compare(first: Callable[[int], Any], second: Callable[[int], Any], *,
            settle: Callable[[Any], None] = lambda answer: None) -> tuple[bool, str, list[Comparison]]:
    """Up to ``ROUNDS`` rounds of ``compare_interleaved``: (agreed in some round, every round described, rounds)."""
    rounds: list[Comparison] = []
    for _ in range(ROUNDS):
        rounds.append(compare_interleaved(first, second, settle=settle))
        if rounds[-1].agree:
            break
    return rounds[-1].agree, " | ".join(r.describe() for r in rounds), rounds
