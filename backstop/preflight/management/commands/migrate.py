"""`backstop migrate`: Django's migrate behind the deploy guard (backstop/preflight/guard.py).

With the guard on (production's default), a plan is applied only after a passing `backstop preflight` of exactly that
plan on recent data; `--force --reason "..."` applies it anyway and records a GuardOverride. `--plan` and `--check`
change nothing and are never guarded.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import connections
from django.db.migrations.exceptions import AmbiguityError
from django.db.migrations.loader import MigrationLoader

from backstop.preflight import messages
from backstop.preflight.guard import Target, check_plan, guard_is_on, record_override


class Command(DjangoMigrateCommand):
    help = DjangoMigrateCommand.help + " In production, only a plan a recent `backstop preflight` passed."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--force", action="store_true",
                            help="apply even without a passing preflight of this plan (needs --reason; recorded)")
        parser.add_argument("--reason", default="", help="why --force: kept with the override, with who ran it")

    def handle(self, *args: Any, **options: Any) -> None:
        if not guard_is_on() or options["plan"] or options["check_unapplied"] or options["prune"]:
            super().handle(*args, **options)
            return
        database = options["database"]
        targets = _targets(database, options["app_label"], options["migration_name"])
        if targets is None:  # an app or migration Django does not know: let it say so in its own words
            super().handle(*args, **options)
            return
        verdict = check_plan(using=database, targets=targets)
        if verdict.allowed:
            if verdict.plan and options["verbosity"] > 0:
                self.stdout.write(verdict.why)
            super().handle(*args, **options)
            return
        if not options["force"]:
            raise CommandError(verdict.why)
        reason = options["reason"].strip()
        if not reason:
            raise CommandError(messages.GUARD_FORCE_NEEDS_REASON)
        override = record_override(verdict=verdict, reason=reason, using=database)
        try:
            super().handle(*args, **options)
        finally:
            if override is None:  # the override's table came with this plan: record it now that it may exist
                override = record_override(verdict=verdict, reason=reason, using=database)
        by = override.by if override is not None else "unknown"
        self.stderr.write(messages.GUARD_OVERRIDDEN.format(by=by, reason=reason, plan=", ".join(verdict.plan)))


def _targets(database: str, app_label: str | None, migration_name: str | None) -> list[Target] | None:
    """The targets Django's migrate works out from its arguments (None when they name nothing it knows)."""
    loader = MigrationLoader(connections[database], ignore_no_migrations=True)
    if not app_label:
        return list(loader.graph.leaf_nodes())
    if app_label not in loader.migrated_apps:
        return None
    if not migration_name:
        return [key for key in loader.graph.leaf_nodes() if key[0] == app_label]
    if migration_name == "zero":
        return [(app_label, None)]
    try:
        migration = loader.get_migration_by_prefix(app_label, migration_name)
    except (AmbiguityError, KeyError):
        return None
    target: Target = (app_label, migration.name)
    if target not in loader.graph.nodes and target in loader.replacements:
        target = loader.replacements[target].replaces[-1]
    return [target]
