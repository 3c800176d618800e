"""A first-come, first-served queue for SQLite's write lock among the connections of one process.

SQLite gives its write lock to whichever waiting connection's busy handler happens to retry first, and a
connection that has waited a while sleeps up to 100 ms between retries. Under a steady stream of short write
transactions (workflow threads recording their steps) a newcomer keeps winning and a connection that has been
waiting for a second keeps losing: a web request measured 5 s waiting for a lock that was never held for more
than a few milliseconds.

Connections made with ``factory=GatedConnection`` (``sqlite3.connect`` and everything built on it, Django's
backend and SQLAlchemy's included) take a ticket for their database file before a statement that takes the
write lock, and hand the lock to the next ticket in line when their transaction ends. Inside this process the
lock then goes in arrival order; between processes SQLite's busy handler still decides.

The ticket is taken exactly where SQLite takes its lock (an explicit ``BEGIN``, or a write outside a
transaction, which starts one) and given back exactly where SQLite releases it, so the gate adds no lock that
SQLite would not hold anyway: a connection that would block on the gate would have blocked on the file.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

# Statements that take SQLite's write lock when no transaction is open (BEGIN opens one; the legacy
# isolation levels open one implicitly before a write).
_TAKES_WRITE_LOCK = re.compile(r"\s*(BEGIN|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b", re.IGNORECASE)
_WRITE_IN_WITH = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


_thread_role = threading.local()


def defer_to_foreground() -> None:
    """Mark this thread as background work: its writes wait behind every waiting foreground writer."""
    _thread_role.background = True


def serve_foreground() -> None:
    """Put this thread back in the foreground line: a pool thread that ran background work now runs work a person
    waits for (the engine reuses its threads, so the mark would otherwise stay with the thread)."""
    _thread_role.background = False


class WriteGate:
    """A lock handed over in arrival order, foreground waiters first; its owner is a connection, not a thread."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: object | None = None
        self._foreground: deque[tuple[object, threading.Event]] = deque()
        self._background: deque[tuple[object, threading.Event]] = deque()

    def acquire(self, owner: object, timeout: float) -> bool:
        line = self._background if getattr(_thread_role, "background", False) else self._foreground
        with self._mutex:
            if self._owner is None:
                self._owner = owner
                return True
            turn = threading.Event()
            line.append((owner, turn))
        if turn.wait(timeout):
            return True
        with self._mutex:
            if self._owner is owner:  # handed over while the wait was timing out
                return True
            line.remove((owner, turn))
        return False

    def release(self, owner: object) -> None:
        with self._mutex:
            if self._owner is not owner:
                return
            line = self._foreground or self._background
            if line:
                self._owner, turn = line.popleft()
                turn.set()
            else:
                self._owner = None


_gates: dict[str, WriteGate] = {}
_gates_mutex = threading.Lock()


def gate_for(database: str) -> WriteGate | None:
    """The gate of a database file; None for in-memory databases, which no other connection shares."""
    if database in ("", ":memory:") or "mode=memory" in database:
        return None
    key = database if database.startswith("file:") else os.path.abspath(database)
    with _gates_mutex:
        return _gates.setdefault(key, WriteGate())


class GatedConnection(sqlite3.Connection):
    """``sqlite3.Connection`` that queues for the write lock through its file's ``WriteGate``."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._gate = gate_for(str(database))
        self._gate_timeout = float(kwargs.get("timeout", args[0] if args else 5.0))
        self._holding = False

    def cursor(self, factory: Any = sqlite3.Cursor) -> Any:
        return super().cursor(_gated_cursor_class(factory))

    # The C shortcuts make a plain cursor without calling cursor(): route them through a gated one.
    def execute(self, sql: str, *args: Any) -> Any:
        return self.cursor().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self.cursor().executemany(sql, *args)

    def executescript(self, script: str) -> Any:
        return self.cursor().executescript(script)

    def before_statement(self, sql: str) -> None:
        if self._gate is None or self._holding or self.in_transaction:
            return
        match = _TAKES_WRITE_LOCK.match(sql)
        if match is None and not (sql.lstrip()[:4].upper() == "WITH" and _WRITE_IN_WITH.search(sql)):
            return
        # On a timeout, go ahead without the gate: SQLite's own busy timeout answers as it always did.
        self._holding = self._gate.acquire(self, self._gate_timeout)

    def after_statement(self) -> None:
        if self._holding and not self.in_transaction:
            self._release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.after_statement()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.after_statement()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._holding:
                self._release()

    def _release(self) -> None:
        assert self._gate is not None
        self._holding = False
        self._gate.release(self)


_cursor_classes: dict[type, type] = {}


def _gated_cursor_class(factory: type) -> type:
    """``factory`` (sqlite3.Cursor or a subclass such as Django's) with its statements passed through the gate."""
    cls = _cursor_classes.get(factory)
    if cls is None:
        cls = type(f"Gated{factory.__name__}", (_GatedCursorMixin, factory), {})
        _cursor_classes[factory] = cls
    return cls


class _GatedCursorMixin:
    connection: GatedConnection

    def _through_gate(self, run: Callable[..., Any], sql: str, *args: Any, **kwargs: Any) -> Any:
        self.connection.before_statement(sql)
        try:
            return run(sql, *args, **kwargs)
        finally:
            self.connection.after_statement()

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return self._through_gate(super().execute, sql, *args, **kwargs)  # type: ignore[misc]

    def executemany(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return self._through_gate(super().executemany, sql, *args, **kwargs)  # type: ignore[misc]

    def executescript(self, script: str) -> Any:
        return self._through_gate(super().executescript, script)  # type: ignore[misc]
