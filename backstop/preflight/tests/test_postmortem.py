"""The post-mortem, replayed: a migration that passes on the fixture data and fails on production-shaped data.

A unique constraint on case-folded company names passes on the tidy accounts CI makes, and fails where production
holds "Acme Corp" and "ACME CORP". The preflight catches it before production, names the rows, and production is
untouched: same schema, same rows, the migration not recorded, no lock held, no scratch database left behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from backstop.accounts.models import Account
from backstop.preflight.plan import pending_plan, plan_fingerprint
from backstop.preflight.runner import run_preflight
from backstop.preflight.tests.pending_migrations import make_pending

CASEFOLD_UNIQUE = """    operations = [
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(Lower("company"), name="one_account_per_company_casefolded"),
        ),
    ]
"""


def make_account(email: str, company: str) -> Account:
    return Account.objects.create(email=email, email_key=email, name="Ann Lee", company=company)


def production_state() -> dict[str, Any]:
    with connection.cursor() as cursor:
        constraints = sorted(connection.introspection.get_constraints(cursor, "accounts_account"))
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
        applied = cursor.fetchall()
    rows = list(Account.objects.order_by("pk").values_list("pk", "email", "company"))
    return {"constraints": constraints, "applied": applied, "rows": rows}


def assert_no_lock_held_and_no_scratch_left() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE relation = 'accounts_account'::regclass "
                           "AND pid <> pg_backend_pid()")
            assert cursor.fetchone()[0] == 0
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                           [connection.settings_dict["NAME"] + "_preflight_%"])
            assert cursor.fetchall() == []
    else:
        import sqlite3

        # Any lock the preflight left on the file would make this write fail at once (timeout 0).
        other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()


@pytest.mark.django_db(transaction=True)
def test_it_catches_the_case_only_duplicates_the_fixture_data_never_had(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))
    # The fixture data CI uses: tidy, one spelling per company.
    make_account("ann@example.com", "Acme Corp")
    make_account("bob@example.com", "Globex")

    on_fixtures = run_preflight()

    assert on_fixtures.passed, (on_fixtures.report.get("error"), on_fixtures.report.get("traceback"))
    assert on_fixtures.plan == plan
    (applied,) = on_fixtures.report["migrations"]
    assert applied["status"] == "applied"
    if connection.vendor == "postgresql":  # building the unique index keeps writers out of the table while it runs
        assert ("accounts_account", "ShareLock") in [(lock["relation"], lock["mode"]) for lock in applied["locks"]]
    else:
        assert [lock["relation"] for lock in applied["locks"]] == ["(whole database)"]

    # Production-shaped data: the same company typed twice, differing only in case, as old code allowed.
    shouting = make_account("cy@example.com", "ACME CORP")
    anns = Account.objects.get(email="ann@example.com")
    before = production_state()

    on_production = run_preflight()

    assert not on_production.passed
    assert on_production.plan_fingerprint == plan_fingerprint(pending_plan())
    entry = on_production.report["migrations"][0]
    assert entry["migration"] == "accounts.9001_company_casefold_unique"
    assert entry["status"] == "failed"
    assert "IntegrityError" in entry["error"]
    (duplicates,) = entry["checks"]
    assert duplicates["check"] == "duplicates"
    assert duplicates["count"] == 1  # one case-folded value held twice
    assert [(row["pk"], row["values"]["company"], row["key"]) for row in duplicates["rows"]] == [
        (anns.pk, "Acme Corp", ["acme corp"]), (shouting.pk, "ACME CORP", ["acme corp"])]
    assert entry["offending_rows"][0]["rows"] == duplicates["rows"]

    # Production is untouched: only the verdict row was written.
    assert production_state() == before
    assert_no_lock_held_and_no_scratch_left()
    assert on_production.data_taken_at >= on_fixtures.finished_at  # type: ignore[operator]
