"""Deploys on the timeline: `backstop migrate` records the migrations it applied, in a real process on a fresh
database."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from conftest import ROOT


@pytest.mark.unmigrated_database
def test_it_records_the_migrations_backstop_migrate_applied_as_a_deploy(server_database: Any) -> None:
    env = {**os.environ, "BACKSTOP_DATA_DIR": str(server_database.data_dir), "DATABASE_URL": server_database.url}

    def migrate(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "backstop.cli", "migrate", "--verbosity", "0", *args], env=env, cwd=ROOT,
                       check=True, capture_output=True, timeout=600)

    migrate()
    migrate()  # nothing left to apply: no second deploy

    deploys = server_database.query("SELECT source, detail FROM incidents_incidentevent WHERE kind = 'deploy'")
    assert len(deploys) == 1
    source, detail = deploys[0]
    assert source.startswith("migrate@")
    assert "incidents.0001_initial" in str(detail) and "accounts.0001_initial" in str(detail)
