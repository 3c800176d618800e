"""Wake-ups: a waiter hears committed news at once, never news rolled back, and another process's through PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction

from backstop.runtime import wakeup


class Boom(Exception):
    pass


@pytest.fixture
def only_woken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiters look at their rows only when woken (their own looks come after a minute): what ends a wait is the
    wake-up."""
    monkeypatch.setattr(wakeup, "FIRST_LOOK_SECONDS", 60.0)


def _later(action: Any, delay: float = 0.2) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        try:
            action()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_it_wakes_a_waiter_the_moment_its_news_commits(only_woken: None) -> None:
    news = threading.Event()

    def make_news() -> None:
        with transaction.atomic():
            news.set()
            wakeup.notify("order", "7")

    thread = _later(make_news)
    started = time.monotonic()
    answered = wakeup.wait_until(news.is_set, topic="order", key="7", timeout=30, longest_look=60)
    thread.join()

    assert answered
    assert time.monotonic() - started < 10  # not the end of the 30 s wait, nor a look a minute on


@pytest.mark.django_db(transaction=True)
def test_it_wakes_no_one_for_news_rolled_back_or_about_something_else(only_woken: None) -> None:
    looks: list[float] = []

    def rolled_back() -> None:
        with pytest.raises(Boom), transaction.atomic():
            wakeup.notify("order", "8")
            raise Boom

    def news_for_others() -> None:
        rolled_back()
        wakeup.notify("order", "9")

    def look() -> bool:
        looks.append(time.monotonic())
        return False

    thread = _later(news_for_others)
    answered = wakeup.wait_until(look, topic="order", key="8", timeout=1.0, longest_look=60)
    thread.join()

    assert not answered
    # The first look, and the last one at the end of the wait: nothing woke it in between.
    assert len(looks) == 2 and looks[1] - looks[0] >= 0.9


@pytest.mark.django_db(transaction=True)
def test_it_hands_each_subscriber_the_keys_notified_since_its_last_look() -> None:
    with wakeup.subscribe("purchase") as handed_over:
        wakeup.notify("purchase", "1")
        wakeup.notify("purchase", "2")
        wakeup.notify("checkout", "3")
        keys: set[str] = set()
        deadline = time.monotonic() + 10
        while keys != {"1", "2"} and time.monotonic() < deadline:
            found, _ = handed_over.wait(timeout=1.0)
            keys |= found

    assert keys == {"1", "2"}


@pytest.mark.django_db(transaction=True)
def test_it_hears_another_process_through_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no channel between processes")
    import psycopg

    settings_dict = connection.settings_dict
    other = psycopg.connect(dbname=settings_dict["NAME"], user=settings_dict.get("USER") or None,
                            password=settings_dict.get("PASSWORD") or None, host=settings_dict.get("HOST") or None,
                            port=settings_dict.get("PORT") or None, autocommit=True)
    try:
        with wakeup.subscribe("purchase") as handed_over:
            keys: set[str] = set()
            deadline = time.monotonic() + 20
            while "42" not in keys and time.monotonic() < deadline:
                found, missed = handed_over.wait(timeout=0.5)
                keys |= found
                if not missed:  # listening: what another connection sends now is heard
                    other.execute(f"NOTIFY {wakeup.CHANNEL}, 'purchase:42'")
            assert "42" in keys
    finally:
        other.close()
        wakeup.stop_listening()
