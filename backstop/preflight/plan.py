"""The migration plan a database has pending, and its fingerprint (what the deploy guard matches a preflight to)."""

from __future__ import annotations

import hashlib
import inspect

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration


def pending_plan(*, using: str = DEFAULT_DB_ALIAS) -> list[Migration]:
    """The migrations ``migrate`` would apply to the database ``using``, in order."""
    executor = MigrationExecutor(connections[using])
    targets = executor.loader.graph.leaf_nodes()
    return [migration for migration, backwards in executor.migration_plan(targets) if not backwards]


def plan_names(plan: list[Migration]) -> list[str]:
    return [f"{migration.app_label}.{migration.name}" for migration in plan]


def plan_fingerprint(plan: list[Migration]) -> str:
    """SHA-256 over each migration's name and source: the same plan, edited, is another plan."""
    digest = hashlib.sha256()
    for migration in plan:
        digest.update(f"{migration.app_label}.{migration.name}\n".encode())
        digest.update(inspect.getsource(inspect.getmodule(migration) or type(migration)).encode())
    return digest.hexdigest()
