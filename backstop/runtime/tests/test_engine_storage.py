"""The engine's own SQLite file: write-ahead log, so a commit neither blocks readers nor syncs the disk thrice."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from django.conf import settings

from backstop.lib.sqlite_gate import GatedConnection

pytestmark = pytest.mark.usefixtures("engine_db")


def test_it_keeps_the_engine_file_in_write_ahead_log_mode() -> None:
    url = settings.DBOS_SYSTEM_DATABASE_URL
    if not url.startswith("sqlite:///"):
        pytest.skip("the engine shares PostgreSQL with the application: no file of its own")

    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_it_queues_the_engine_and_the_application_for_their_write_locks_in_arrival_order() -> None:
    from dbos._dbos import _get_dbos_instance
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL has row locks and a fair lock manager of its own")
    connection.ensure_connection()
    engine = _get_dbos_instance()._sys_db.engine

    with engine.connect() as engine_connection:
        assert isinstance(engine_connection.connection.driver_connection, GatedConnection)
    assert isinstance(connection.connection, GatedConnection)
