"""A pool thread that ran background work gets the web requests' priority back before work a person waits for."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from backstop.lib.sqlite_gate import GatedConnection
from backstop.runtime.engine import reclaim_request_priority, yield_cpu_to_requests

pytestmark = pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are Linux's")


def _in_thread(work: Any) -> Any:
    """Run ``work`` on a thread of its own (nice values and the gate's line belong to the thread) and return it."""
    result: dict[str, Any] = {}

    def run() -> None:
        result["value"] = work()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result["value"]


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@override_settings(BACKGROUND_NICE=10)
def test_it_gives_a_thread_that_ran_background_work_the_requests_cpu_priority_back() -> None:
    process_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())

    def background_then_request() -> tuple[int, int, bool]:
        yield_cpu_to_requests()
        lowered = _nice()
        reclaimed = reclaim_request_priority()
        return lowered, _nice(), reclaimed

    lowered, after, reclaimed = _in_thread(background_then_request)

    assert lowered == max(process_nice, 10)
    if not reclaimed:  # only where the process may raise a nice value (root, CAP_SYS_NICE, RLIMIT_NICE)
        pytest.skip("this process may not raise a thread's priority")
    assert after == process_nice


@override_settings(BACKGROUND_NICE=0)
def test_it_puts_a_thread_that_ran_background_work_back_in_the_foreground_write_line(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    path = tmp_path / "line.sqlite3"
    with closing(sqlite3.connect(path)) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE arrivals (who TEXT)")
    holder = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False, factory=GatedConnection)
    holder.execute("BEGIN IMMEDIATE")
    order: list[str] = []
    queued: list[threading.Thread] = []

    def writer(name: str, *, reclaim: bool) -> None:
        yield_cpu_to_requests()  # every writer here ran background work first
        if reclaim:
            reclaim_request_priority()
        with closing(sqlite3.connect(path, timeout=10, isolation_level=None, factory=GatedConnection)) as mine:
            mine.execute("BEGIN IMMEDIATE")
            order.append(name)
            mine.execute("INSERT INTO arrivals VALUES (?)", [name])
            mine.execute("COMMIT")

    for name, reclaim in (("delivery", False), ("checkout", True)):
        thread = threading.Thread(target=writer, args=(name,), kwargs={"reclaim": reclaim})
        thread.start()
        queued.append(thread)
        # In line before the next one arrives: the delivery came first.
        threading.Event().wait(0.3)
    holder.execute("COMMIT")
    holder.close()
    for thread in queued:
        thread.join(timeout=30)

    assert order == ["checkout", "delivery"]
