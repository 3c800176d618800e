from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from backstop.lib.turns import Turns


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_it_hands_a_freed_slot_to_the_oldest_waiter_not_to_whoever_asks_next() -> None:
    turns = Turns(1)
    order: list[int] = []

    def take(number: int) -> None:
        with turns:
            order.append(number)

    turns.__enter__()  # the slot is held: everyone below queues
    threads: list[threading.Thread] = []
    for number in range(5):
        thread = threading.Thread(target=take, args=(number,))
        thread.start()
        wait_for(lambda: turns.waiting == len(threads) + 1)  # queued in this order
        threads.append(thread)
    turns.__exit__(None, None, None)
    take(99)  # arrives last: with a semaphore it could take the slot before the woken waiter runs
    for thread in threads:
        thread.join(5)

    assert order == [0, 1, 2, 3, 4, 99]


def test_it_lets_as_many_in_at_once_as_it_has_slots() -> None:
    turns = Turns(3)
    inside = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with turns:
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.02)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert most == 3
    assert turns.waiting == 0


def test_it_frees_the_slot_when_the_holder_raises() -> None:
    turns = Turns(1)
    with pytest.raises(RuntimeError), turns:
        raise RuntimeError("boom")

    done = threading.Event()

    def enter() -> None:
        with turns:
            done.set()

    threading.Thread(target=enter).start()

    assert done.wait(2)


def test_it_refuses_zero_slots() -> None:
    with pytest.raises(ValueError):
        Turns(0)
