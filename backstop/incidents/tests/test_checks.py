"""The incident settings a deploy must not start with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backstop.incidents.checks import check_incident_settings


def test_it_accepts_the_defaults(settings: Any, tmp_path: Path) -> None:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "new" / "status.json"
    assert check_incident_settings() == []


def test_it_refuses_a_sev2_count_not_below_the_sev1_count(settings: Any, tmp_path: Path) -> None:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "status.json"
    settings.INCIDENT_SEV1_CUSTOMERS, settings.INCIDENT_SEV2_CUSTOMERS = 10, 10
    assert [problem.id for problem in check_incident_settings()] == ["backstop.E201"]


def test_it_refuses_a_status_file_it_cannot_write(settings: Any, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data directory should be")
    settings.INCIDENTS_STATUS_FILE = not_a_folder / "status.json"
    assert [problem.id for problem in check_incident_settings()] == ["backstop.E202"]
