"""Test-only migrations: the real `accounts` migrations plus extra ones, pending on the test database.

``MIGRATION_MODULES`` points `accounts` at a package written into a temporary directory: one module per real
migration (re-exporting it, so every other app's dependencies still resolve) and the extra migrations after the
real leaf. The test database has every real migration applied, so the extra ones are exactly the pending plan.
"""

from __future__ import annotations

import re
import secrets
import sys
from pathlib import Path
from typing import Any

from django.db.migrations.loader import MigrationLoader

import backstop.accounts.migrations as real_migrations

HEADER = """from django.db import migrations, models
from django.db.models import Q
from django.db.models.functions import Lower

"""


def make_pending(tmp_path: Path, settings: Any, monkeypatch: Any, *migrations: tuple[str, str]) -> list[str]:
    """Write ``(name, class body)`` migrations after the accounts leaf; return the plan names they make."""
    leaf = next(name for app, name in MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes()
                if app == "accounts")
    package = f"preflight_pending_{secrets.token_hex(4)}"
    directory = tmp_path / package
    directory.mkdir()
    (directory / "__init__.py").write_text("")
    for path in sorted(Path(real_migrations.__file__).parent.glob("[0-9]*.py")):
        (directory / path.name).write_text(
            "import importlib\n\n"
            f"Migration = importlib.import_module('backstop.accounts.migrations.{path.stem}').Migration\n")
    previous = leaf
    for name, body in migrations:
        assert re.fullmatch(r"9\d{3}_\w+", name), "extra migrations are numbered 9xxx, after any real one"
        (directory / f"{name}.py").write_text(
            HEADER + "class Migration(migrations.Migration):\n"
            f"    dependencies = [('accounts', {previous!r})]\n" + body)
        previous = name
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.MIGRATION_MODULES = {"accounts": package}
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    return [f"accounts.{name}" for name, _body in migrations]
