"""The engine's own SQLite file: write-ahead log, so a commit neither blocks readers nor syncs the disk thrice."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from django.conf import settings

pytestmark = pytest.mark.usefixtures("engine_db")


def test_it_keeps_the_engine_file_in_write_ahead_log_mode() -> None:
    url = settings.DBOS_SYSTEM_DATABASE_URL
    if not url.startswith("sqlite:///"):
        pytest.skip("the engine shares PostgreSQL with the application: no file of its own")

    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
