"""Objects alive once a process has started are left out of the garbage collector's later full passes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from backstop.lib.heap import freeze_startup_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as it did


def test_it_leaves_what_the_process_started_with_out_of_later_full_collections(unfrozen: None) -> None:
    startup = [{"n": n, "child": [n]} for n in range(200_000)]  # long-lived, tracked: as modules and settings are
    walked_before = len(gc.get_objects())

    frozen = freeze_startup_objects()

    assert frozen >= 2 * len(startup)  # each dict and its list
    # What a full collection still walks: only what was made since (other threads of the session make a little).
    assert len(gc.get_objects()) < walked_before // 20
    garbage: list[object] = []
    garbage.append(garbage)  # a cycle made after startup is still collected
    del garbage
    assert gc.collect() >= 1
    assert startup  # still alive, never walked again
