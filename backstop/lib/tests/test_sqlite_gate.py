"""The write-lock queue for SQLite: writers of one process get the lock in arrival order, foreground first."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from backstop.lib.sqlite_gate import GatedConnection, defer_to_foreground


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "gate.sqlite3"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE arrivals (who TEXT)")
    yield path


def connect(path: Path, timeout: float = 10.0) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False,
                           factory=GatedConnection)


def writers_in_turn(path: Path, names: list[str], *, before: Callable[[str], None] = lambda name: None) -> list[str]:
    """Hold the write lock, queue ``names`` one after another behind it, release it; return the order they wrote."""
    holder = connect(path)
    holder.execute("BEGIN IMMEDIATE")
    threads = []
    for name in names:
        def write(name: str = name) -> None:
            before(name)
            with closing(connect(path)) as connection:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("INSERT INTO arrivals VALUES (?)", (name,))
                connection.execute("COMMIT")
        thread = threading.Thread(target=write)
        thread.start()
        threads.append(thread)
        time.sleep(0.15)  # long enough for this writer to be waiting before the next arrives
    holder.execute("COMMIT")
    holder.close()
    for thread in threads:
        thread.join(10)
    with closing(sqlite3.connect(path)) as connection:
        return [who for (who,) in connection.execute("SELECT who FROM arrivals ORDER BY rowid")]


def test_it_hands_the_write_lock_over_in_arrival_order(database: Path) -> None:
    names = [f"writer-{i}" for i in range(6)]

    assert writers_in_turn(database, names) == names


def test_it_lets_foreground_writers_go_before_background_ones(database: Path) -> None:
    def mark(name: str) -> None:
        if name.startswith("background"):
            defer_to_foreground()

    order = writers_in_turn(database, ["background-1", "web-1", "background-2", "web-2"], before=mark)

    assert order == ["web-1", "web-2", "background-1", "background-2"]


@pytest.mark.parametrize("finish", ["COMMIT", "ROLLBACK", "close"])
def test_it_passes_the_lock_on_however_the_transaction_ends(database: Path, finish: str) -> None:
    first = connect(database)
    first.execute("BEGIN IMMEDIATE")
    first.execute("INSERT INTO arrivals VALUES ('first')")
    if finish == "close":
        first.close()
    else:
        first.execute(finish)

    with closing(connect(database, timeout=0.5)) as second:
        second.execute("INSERT INTO arrivals VALUES ('second')")  # an autocommit write takes and returns the lock
        second.execute("BEGIN IMMEDIATE")
        second.commit()
    first.close()


def test_it_waits_no_longer_than_the_connection_timeout_then_answers_as_sqlite_does(database: Path) -> None:
    with closing(connect(database)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with closing(connect(database, timeout=0.3)) as late, pytest.raises(sqlite3.OperationalError, match="locked"):
            late.execute("INSERT INTO arrivals VALUES ('late')")
        assert time.monotonic() - started < 5
        holder.execute("ROLLBACK")


def test_it_lets_reads_through_while_a_writer_holds_the_lock(database: Path) -> None:
    with closing(connect(database)) as holder, closing(connect(database, timeout=0.2)) as reader:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO arrivals VALUES ('uncommitted')")

        assert reader.execute("SELECT count(*) FROM arrivals").fetchone() == (0,)
        holder.execute("COMMIT")


def test_it_gates_writes_of_the_legacy_implicit_transactions_sqlalchemy_uses(database: Path) -> None:
    implicit = sqlite3.connect(database, timeout=10, isolation_level="IMMEDIATE", check_same_thread=False,
                               factory=GatedConnection)
    implicit.execute("INSERT INTO arrivals VALUES ('implicit')")  # opens BEGIN IMMEDIATE behind the scenes

    with closing(connect(database, timeout=0.3)) as other, pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("INSERT INTO arrivals VALUES ('other')")
    implicit.commit()
    with closing(connect(database, timeout=0.3)) as other:
        other.execute("INSERT INTO arrivals VALUES ('other')")
    implicit.close()
