"""The plan's fingerprint, which the deploy guard matches a preflight to: it changes when anything the plan's
migrations read changes, their own text or the project's helpers they import."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.migrations.loader import MigrationLoader

from backstop.lib import email_identity
from backstop.preflight import plan


@pytest.fixture
def fill_email_key() -> Any:
    # A data migration whose RunPython uses a helper from backstop.lib.
    return MigrationLoader(None, ignore_no_migrations=True).disk_migrations[("accounts", "0004_fill_email_key")]


def test_it_names_the_project_modules_a_migration_imports(fill_email_key: Any) -> None:
    used = plan._project_modules_used(__import__(type(fill_email_key).__module__, fromlist=["Migration"]))

    assert email_identity in used
    assert all(not module.__name__.startswith("django") for module in used)


def test_it_changes_the_fingerprint_when_a_helper_the_migration_uses_changes(
        fill_email_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    before = plan.plan_fingerprint([fill_email_key])
    real_getsource = plan.inspect.getsource

    def edited(obj: Any) -> str:
        source = real_getsource(obj)
        return source + "\n# edited after the preflight passed\n" if obj is email_identity else source

    monkeypatch.setattr(plan.inspect, "getsource", edited)

    assert plan.plan_fingerprint([fill_email_key]) != before
