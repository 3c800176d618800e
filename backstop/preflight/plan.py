"""The migration plan a database has pending, and its fingerprint (what the deploy guard matches a preflight to)."""

from __future__ import annotations

import hashlib
import inspect
import sys
from types import ModuleType

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
    """SHA-256 over each migration's name and source, and the source of the project's modules it uses (a RunPython's
    helpers imported from elsewhere): the same plan, edited anywhere it reads, is another plan."""
    digest = hashlib.sha256()
    for migration in plan:
        module = inspect.getmodule(migration)
        digest.update(f"{migration.app_label}.{migration.name}\n".encode())
        digest.update(inspect.getsource(module or type(migration)).encode())
        for helper in _project_modules_used(module):
            digest.update(f"{helper.__name__}\n".encode())
            digest.update(inspect.getsource(helper).encode())
    return digest.hexdigest()


def _project_modules_used(module: ModuleType | None) -> list[ModuleType]:
    """The project's modules (``backstop.*``, outside the migrations themselves) whose names or contents the migration
    module holds, in name order. Only those it names directly: what they import in turn is left out."""
    if module is None:
        return []
    used: dict[str, ModuleType] = {}
    for value in vars(module).values():
        found = value if isinstance(value, ModuleType) else sys.modules.get(getattr(value, "__module__", "") or "")
        name = getattr(found, "__name__", "")
        if (found is not None and found is not module and name.startswith("backstop.")
                and ".migrations." not in f"{name}."):
            used[name] = found
    return [used[name] for name in sorted(used)]
