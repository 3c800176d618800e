"""The deploy guard: `backstop migrate` (and `serve --migrate`) applies a plan only after a recent passing preflight of
exactly that plan; `--force --reason` applies it anyway and is recorded."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone

from backstop.preflight.guard import check_plan
from backstop.preflight.models import GuardOverride, PreflightRun
from backstop.preflight.plan import pending_plan, plan_fingerprint, plan_names
from backstop.preflight.sanitize import snapshot_connection, take_snapshot

# The migration each test leaves pending on the copy: the first of an app nothing else depends on.
PENDING_APP = "ratelimits"
PENDING = ["ratelimits.0001_initial"]


@pytest.fixture(scope="module")
def production_copy(django_db_setup: Any, django_db_blocker: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """A copy of the migrated test database standing in for production (its alias, and its settings)."""
    with django_db_blocker.unblock(), tempfile.TemporaryDirectory() as data_dir:
        if connection.vendor == "sqlite":
            target = str(Path(data_dir) / "backstop.sqlite3")
        else:
            target = f"{connection.settings_dict['NAME'].removeprefix('test_')}_guard_{uuid.uuid4().hex[:8]}"
        take_snapshot(target=target, sanitize=False)
        config = {**connection.settings_dict, "NAME": target}
        config["OPTIONS"] = {k: v for k, v in config.get("OPTIONS", {}).items() if k != "pool"}
        try:
            with snapshot_connection(config) as alias:
                yield alias, config
        finally:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


@pytest.fixture
def production(production_copy: tuple[str, dict[str, Any]], db: Any) -> Iterator[str]:
    """The copy with one migration pending and no preflight recorded, the guard on."""
    alias, _ = production_copy
    call_command("migrate", PENDING_APP, "zero", database=alias, verbosity=0)  # the guard is off in the tests
    PreflightRun.objects.using(alias).all().delete()
    GuardOverride.objects.using(alias).all().delete()
    with override_settings(MIGRATION_GUARD="on", PREFLIGHT_MAX_AGE_HOURS=24):
        yield alias


def _record_preflight(alias: str, *, passed: bool = True, age: dt.timedelta = dt.timedelta(hours=1),
                      fingerprint: str | None = None) -> PreflightRun:
    plan = pending_plan(using=alias)
    return PreflightRun.objects.using(alias).create(
        plan_fingerprint=fingerprint or plan_fingerprint(plan), plan=plan_names(plan), vendor=connection.vendor,
        data_taken_at=timezone.now() - age, finished_at=timezone.now(), passed=passed,
    )


def _pending(alias: str) -> list[str]:
    return plan_names(pending_plan(using=alias))


def test_it_refuses_a_plan_no_preflight_has_run_for(production: str) -> None:
    assert _pending(production) == PENDING
    with pytest.raises(CommandError, match=r"no preflight has run for this migration plan .*backstop preflight"):
        call_command("migrate", database=production, verbosity=0)
    assert _pending(production) == PENDING
    assert "ratelimits_counter" not in connections[production].introspection.table_names()


def test_it_applies_a_plan_a_recent_preflight_passed(production: str) -> None:
    _record_preflight(production)
    call_command("migrate", database=production, verbosity=0)
    assert _pending(production) == []
    assert not GuardOverride.objects.using(production).exists()


@pytest.mark.parametrize("record", [
    pytest.param({"age": dt.timedelta(hours=25)}, id="stale"),
    pytest.param({"fingerprint": "0" * 64}, id="another plan"),
    pytest.param({"passed": False}, id="failed"),
])
def test_it_refuses_a_stale_failed_or_other_plans_preflight(production: str, record: dict[str, Any]) -> None:
    _record_preflight(production, **record)
    verdict = check_plan(using=production)
    assert not verdict.allowed and verdict.plan == PENDING
    with pytest.raises(CommandError, match=r"Refused: .*backstop preflight"):
        call_command("migrate", database=production, verbosity=0)
    assert _pending(production) == PENDING


def test_it_applies_with_force_and_a_reason_and_records_who_and_why(production: str) -> None:
    with pytest.raises(CommandError, match=r"--force needs --reason"):
        call_command("migrate", database=production, force=True, verbosity=0)
    assert not GuardOverride.objects.using(production).exists()
    call_command("migrate", database=production, force=True, reason="hotfix for incident 42", verbosity=0)
    assert _pending(production) == []
    override = GuardOverride.objects.using(production).get()
    assert override.reason == "hotfix for incident 42" and override.plan == PENDING and override.by
    assert override.plan_fingerprint == check_plan(using=production, targets=[(PENDING_APP, None)]).fingerprint


def test_it_refuses_a_rollback_without_force(production: str) -> None:
    call_command("migrate", database=production, force=True, reason="set up", verbosity=0)
    with pytest.raises(CommandError, match="unapplies migrations"):
        call_command("migrate", PENDING_APP, "zero", database=production, verbosity=0)
    call_command("migrate", PENDING_APP, "zero", database=production, force=True, reason="roll back", verbosity=0)
    assert _pending(production) == PENDING


def test_it_lets_an_empty_database_be_migrated_and_the_plan_be_shown(production: str, tmp_path: Path) -> None:
    empty = {**connections[production].settings_dict, "ENGINE": "django.db.backends.sqlite3",
             "NAME": str(tmp_path / "empty.sqlite3"), "OPTIONS": {}}
    with snapshot_connection(empty, alias="empty_database") as alias:
        assert check_plan(using=alias).allowed
    call_command("migrate", database=production, plan=True, verbosity=0)  # shows, changes nothing: never refused
    assert _pending(production) == PENDING


def test_it_keeps_serve_from_starting_on_an_unchecked_plan(production: str,
                                                          production_copy: tuple[str, dict[str, Any]]) -> None:
    _, config = production_copy
    env = {**os.environ, "BACKSTOP_MIGRATION_GUARD": "on"}
    if connection.vendor == "sqlite":
        env["BACKSTOP_DATA_DIR"] = str(Path(config["NAME"]).parent)
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = (f"postgres://{config['USER'] or 'postgres'}@{config['HOST'] or '127.0.0.1'}:"
                               f"{config['PORT'] or 5432}/{config['NAME']}")
    connections[production].close()  # SQLite: let the child have the file's write lock
    started = subprocess.run([sys.executable, "-m", "backstop.cli", "serve", "--migrate", "--port", "0"], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert started.returncode != 0
    assert "backstop serve --migrate: Refused: no preflight has run" in started.stderr
    assert _pending(production) == PENDING


@pytest.mark.django_db(transaction=True)
def test_it_trusts_the_verdicts_a_real_preflight_records(tmp_path: Path, settings: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from backstop.accounts.models import Account
    from backstop.preflight.runner import run_preflight
    from backstop.preflight.tests.pending_migrations import make_pending
    from backstop.preflight.tests.test_postmortem import CASEFOLD_UNIQUE

    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))
    settings.MIGRATION_GUARD = "on"
    Account.objects.create(email="ann@example.com", email_key="ann@example.com", name="Ann", company="Acme Corp")
    shouting = Account.objects.create(email="cy@example.com", email_key="cy@example.com", name="Cy",
                                      company="ACME CORP")
    with pytest.raises(CommandError, match="no preflight has run"):
        call_command("migrate", verbosity=0)

    assert not run_preflight().passed
    with pytest.raises(CommandError, match="did not pass"):
        call_command("migrate", verbosity=0)

    Account.objects.filter(pk=shouting.pk).update(company="Globex")  # the data fixed, as the runbook says
    passed = run_preflight()
    assert passed.passed
    verdict = check_plan()
    assert verdict.allowed and verdict.run == passed and verdict.plan == ["accounts.9001_company_casefold_unique"]



@pytest.mark.django_db(transaction=True)
def test_it_does_not_count_a_pass_on_another_database_s_rows(copy_target: str, tmp_path: Path, settings: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from backstop.accounts.models import Account
    from backstop.preflight.runner import run_preflight
    from backstop.preflight.tests.pending_migrations import make_pending
    from backstop.preflight.tests.test_postmortem import CASEFOLD_UNIQUE

    take_snapshot(target=copy_target, sanitize=False)  # last week's snapshot: before the duplicates came
    Account.objects.create(email="ann@example.com", email_key="ann@example.com", name="Ann", company="Acme Corp")
    Account.objects.create(email="cy@example.com", email_key="cy@example.com", name="Cy", company="ACME CORP")
    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))
    settings.MIGRATION_GUARD = "on"
    params = connection.settings_dict
    source = copy_target if connection.vendor == "sqlite" else (
        f"postgres://{params['USER'] or 'postgres'}:not-kept@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/"
        f"{copy_target}")

    elsewhere = run_preflight(source=source)

    assert elsewhere.passed and PreflightRun.objects.filter(pk=elsewhere.pk).exists()  # kept, reported
    assert "not-kept" not in str(elsewhere.report)
    assert any("does not count it" in note for note in elsewhere.report["notes"])
    verdict = check_plan()
    assert not verdict.allowed and verdict.run is None
    with pytest.raises(CommandError, match="no preflight has run"):
        call_command("migrate", verbosity=0)
    assert Account.objects.count() == 2
