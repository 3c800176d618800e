"""`backstop preflight`: the table, Markdown and JSON reports, the exit status, the progress bar."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from backstop.accounts.models import Account
from backstop.preflight.management.commands.preflight import ProgressBar
from backstop.preflight.models import PreflightRun
from backstop.preflight.report import render
from backstop.preflight.tests.pending_migrations import make_pending

CASEFOLD_UNIQUE = """    operations = [
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(Lower("company"), name="one_account_per_company_casefolded"),
        ),
    ]
"""


def preflight(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("preflight", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_it_reports_a_failed_plan_in_every_format_and_exits_1(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))
    acme = Account.objects.create(email="a@example.com", email_key="a@example.com", name="A", company="Acme")
    shouting = Account.objects.create(email="b@example.com", email_key="b@example.com", name="B", company="ACME")

    status, text = preflight("--format", "json")
    report = json.loads(text)
    assert status == 1 and report["passed"] is False
    (entry,) = report["migrations"]
    assert [row["pk"] for row in entry["checks"][0]["rows"]] == [acme.pk, shouting.pk]

    # The other formats of the same verdict (one copy is enough: the command renders the run it saved).
    run = PreflightRun.objects.get()
    table = render(run, fmt="table")
    assert table.startswith("preflight FAILED")
    assert "accounts.9001_company_casefold_unique  failed" in table
    assert f"pk={acme.pk}: company='Acme' (compared as ['acme'])" in table
    assert f"pk={shouting.pk}: company='ACME'" in table
    markdown = render(run, fmt="markdown")
    assert markdown.startswith("## Migration preflight: FAILED")
    assert "| `accounts.9001_company_casefold_unique` | failed |" in markdown
    assert f"`pk={acme.pk}: company='Acme' (compared as ['acme'])`" in markdown

    Account.objects.filter(pk=shouting.pk).update(company="Globex")
    status, table = preflight()
    assert status == 0 and table.startswith("preflight PASSED")


def test_it_exits_2_on_wrong_usage() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backstop.settings"}
    wrong = subprocess.run([sys.executable, "-m", "backstop.cli", "preflight", "--format", "xml"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode == 2, wrong.stderr
    assert "invalid choice" in wrong.stderr


@pytest.mark.django_db
def test_it_exits_2_on_a_source_it_cannot_copy() -> None:
    with pytest.raises(Exception) as raised:
        call_command("preflight", "--source", "/nonexistent/snapshot.sqlite3", stdout=io.StringIO())
    assert getattr(raised.value, "returncode", None) == 2


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_it_draws_a_progress_bar_on_a_terminal() -> None:
    terminal = FakeTerminal()
    bar = ProgressBar(terminal)

    bar("copy", 50_000_000, 200_000_000)
    bar("copy", 200_000_000, 200_000_000)
    bar.finish()

    drawn = terminal.getvalue()
    assert "copying    [#######" in drawn and " 25% 50.0/200.0 MB" in drawn
    assert "[##############################] 100% 200.0/200.0 MB" in drawn
    assert drawn.endswith("\n")


def test_it_keeps_a_short_copy_quiet_off_a_terminal() -> None:
    log = io.StringIO()
    bar = ProgressBar(log)
    bar("copy", 1, 2)
    bar("copy", 2, 2)
    bar.finish()
    assert log.getvalue() == ""
