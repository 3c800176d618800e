"""Wake-ups: "look now", from the code that made some news to the threads waiting for it, here or in another process.

A wake-up carries nothing anyone trusts: the rows are the truth. A waiter reads them when it is woken and again every
so often anyway, so a lost wake-up costs time, never correctness.

- ``notify(topic, key)`` wakes this process's waiters on ``(topic, key)`` and the subscribers of ``topic`` when the
  caller's transaction commits (at once outside one). On PostgreSQL it also sends ``NOTIFY backstop_wakeup,
  '<topic>:<key>'`` in the caller's transaction: PostgreSQL hands it to every listening process at commit, never for a
  transaction that rolled back.
- A process listens on one connection of its own (PostgreSQL only), on a thread started the first time a subscriber
  or a waiter in a process without the engine needs it; a broken connection is made again, and subscribers are told,
  so that they look for what they may have missed meanwhile. ``stop_listening()`` closes it (the engine's shutdown).
- SQLite has no channel between processes (``reaches_other_processes()`` is False): a waiter in another process sees
  the news at its next look.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections, transaction

log = logging.getLogger(__name__)

CHANNEL = "backstop_wakeup"
# A waiter looks at its rows after this long even without a wake-up, then twice as long each time up to its limit.
FIRST_LOOK_SECONDS = 0.05

_lock = threading.Lock()
_waiters: dict[tuple[str, str], set[threading.Event]] = {}
_subscriptions: dict[str, set[Subscription]] = {}
_listener: dict[str, _Listener | None] = {"current": None}


def reaches_other_processes() -> bool:
    """Whether a wake-up sent here reaches the other processes on this database (PostgreSQL's NOTIFY)."""
    return connection.vendor == "postgresql"


def notify(topic: str, key: str) -> None:
    """Wake whoever waits on ``(topic, key)`` or subscribes to ``topic``, once the caller's transaction commits."""
    if reaches_other_processes():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, f"{topic}:{key}"])
    transaction.on_commit(lambda: _deliver(topic, key))


def wait_until(ready: Callable[[], bool], *, topic: str, key: str, timeout: float, longest_look: float = 0.5) -> bool:
    """Call ``ready()`` until it returns True (then True) or ``timeout`` seconds pass (then False): again at each
    wake-up on ``(topic, key)``, and anyway after 50 ms, 100 ms, 200 ms... up to every ``longest_look`` seconds."""
    event = threading.Event()
    with _lock:
        _waiters.setdefault((topic, key), set()).add(event)
    try:
        if not _engine_runs_here():
            # The workflow that makes the news runs in another process: hear it through the database. (A process that
            # runs the engine hears its own workflows at once, and another's at the next look.)
            _listen()
        deadline = time.monotonic() + timeout
        pause = FIRST_LOOK_SECONDS
        while True:
            event.clear()  # before reading: news arriving during the read wakes the next wait at once
            if ready():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            event.wait(min(remaining, pause))
            pause = min(pause * 2, longest_look)
    finally:
        with _lock:
            waiting = _waiters.get((topic, key), set())
            waiting.discard(event)
            if not waiting:
                _waiters.pop((topic, key), None)


class Subscription:
    """The keys notified on one topic since the last ``wait``, for a loop that acts on each."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._changed = threading.Condition()
        self._keys: set[str] = set()
        # True at first and after the listening connection was made again: news may have gone by unheard.
        self._missed = True

    def wait(self, timeout: float) -> tuple[set[str], bool]:
        """The keys notified since the last call (waiting up to ``timeout`` for one), and whether news may have been
        missed meanwhile (the subscriber should then look at its rows)."""
        with self._changed:
            if not self._keys and not self._missed:
                self._changed.wait(timeout)
            keys, missed = self._keys, self._missed
            self._keys, self._missed = set(), False
            return keys, missed

    def _put(self, key: str) -> None:
        with self._changed:
            self._keys.add(key)
            self._changed.notify_all()

    def _mark_missed(self) -> None:
        with self._changed:
            self._missed = True
            self._changed.notify_all()


@contextmanager
def subscribe(topic: str) -> Iterator[Subscription]:
    """Hear every ``notify(topic, ...)``: this process's at once, other processes' through the database."""
    subscription = Subscription(topic)
    with _lock:
        _subscriptions.setdefault(topic, set()).add(subscription)
    try:
        _listen()
        yield subscription
    finally:
        with _lock:
            _subscriptions.get(topic, set()).discard(subscription)


def stop_listening() -> None:
    """Close this process's listening connection (the engine stops; the test suite drops the database after)."""
    with _lock:
        listener, _listener["current"] = _listener["current"], None
    if listener is not None:
        listener.stop()


def _engine_runs_here() -> bool:
    from backstop.runtime import engine  # the engine imports this module to stop the listener

    return engine.is_running()


def _deliver(topic: str, key: str) -> None:
    with _lock:
        events = list(_waiters.get((topic, key), ()))
        subscribers = list(_subscriptions.get(topic, ()))
    for event in events:
        event.set()
    for subscription in subscribers:
        subscription._put(key)


def _connected() -> None:
    """The listening connection is (again) up: what was notified while it was down was not heard."""
    with _lock:
        subscribers = [subscription for group in _subscriptions.values() for subscription in group]
    for subscription in subscribers:
        subscription._mark_missed()


def _listen() -> None:
    if not reaches_other_processes():
        return
    with _lock:
        if _listener["current"] is None:
            listener = _Listener(dict(connections["default"].settings_dict))
            _listener["current"] = listener
            listener.start()


class _Listener:
    """One connection of this process's own that LISTENs, on a daemon thread; made again when it breaks."""

    RETRY_SECONDS = 0.5
    MAX_RETRY_SECONDS = 30.0

    def __init__(self, settings_dict: dict[str, Any]) -> None:
        from psycopg.conninfo import make_conninfo

        given = {"dbname": settings_dict.get("NAME"), "user": settings_dict.get("USER"),
                 "password": settings_dict.get("PASSWORD"), "host": settings_dict.get("HOST"),
                 "port": settings_dict.get("PORT")}
        self._conninfo = make_conninfo("", application_name="backstop-wakeup",
                                       **{name: value for name, value in given.items() if value})
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backstop-wakeup", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        pause = self.RETRY_SECONDS
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as listening:
                    listening.execute(f"LISTEN {CHANNEL}")
                    _connected()
                    pause = self.RETRY_SECONDS
                    while not self._stopped.is_set():
                        # Wakes at least once a second to notice stop().
                        for note in listening.notifies(timeout=1.0):
                            topic, _, key = note.payload.partition(":")
                            _deliver(topic, key)
            except Exception:  # the database went away: waiters fall back on their own looks meanwhile
                log.warning("wake-up listener lost its connection; connecting again in %ss", pause, exc_info=True)
                self._stopped.wait(pause)
                pause = min(pause * 2, self.MAX_RETRY_SECONDS)
