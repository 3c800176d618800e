"""Copies of the test database for the preflight app's tests: a file on SQLite, a scratch database on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection


@pytest.fixture
def copy_target(tmp_path: Path, transactional_db: Any) -> Iterator[str]:
    """Where a snapshot of the test database goes; on PostgreSQL the database is dropped after the test."""
    if connection.vendor == "sqlite":
        yield str(tmp_path / "copy.sqlite3")
        return
    name = f"{connection.settings_dict['NAME'].removeprefix('test_')}_copy_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
