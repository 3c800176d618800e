"""The deploy guard: in production, a migration plan is applied only after a preflight passed for exactly that plan.

``backstop migrate`` (and ``backstop serve --migrate`` / ``worker --migrate``, which call it) asks ``check_plan``
first. The plan is what ``migrate`` would apply with the arguments given; its fingerprint covers each migration's
source, so an edited migration needs a preflight of its own. A pass counts only while the data it ran on is younger
than ``BACKSTOP_PREFLIGHT_MAX_AGE_HOURS``. ``--force --reason`` applies anyway and leaves a ``GuardOverride``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.utils import timezone

from backstop.preflight import messages
from backstop.preflight.models import OTHER_SOURCE_KEY, GuardOverride, PreflightRun
from backstop.preflight.plan import plan_fingerprint, plan_names

Target = tuple[str, str | None]


class GuardRefused(Exception):
    """The guard will not apply the plan; the message says why and what to run."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    allowed: bool
    why: str  # one of messages.GUARD_* (what happened and what to do), filled in
    plan: list[str]
    fingerprint: str
    run: PreflightRun | None = None


def guard_is_on() -> bool:
    return bool(settings.MIGRATION_GUARD == "on")


def planned_steps(*, using: str = DEFAULT_DB_ALIAS,
                  targets: list[Target] | None = None) -> list[tuple[Migration, bool]]:
    """What ``migrate`` would run to reach ``targets`` (every app's latest migration when None): (migration,
    backwards) in order."""
    executor = MigrationExecutor(connections[using])
    return executor.migration_plan(targets if targets is not None else executor.loader.graph.leaf_nodes())


def _fresh_database(*, using: str) -> bool:
    """No migration was ever applied: an empty database has no data a migration could trip on."""
    connection = connections[using]
    return "django_migrations" not in connection.introspection.table_names()


def check_plan(*, using: str = DEFAULT_DB_ALIAS, targets: list[Target] | None = None,
               now: dt.datetime | None = None) -> Verdict:
    """Whether the guard lets ``migrate`` run the plan reaching ``targets`` on ``using`` now, and why."""
    steps = planned_steps(using=using, targets=targets)
    migrations = [migration for migration, _ in steps]
    names = plan_names(migrations)
    fingerprint = plan_fingerprint(migrations)
    if not steps:
        return Verdict(True, messages.GUARD_NOTHING_TO_APPLY, names, fingerprint)
    if not guard_is_on():
        return Verdict(True, messages.GUARD_OFF, names, fingerprint)
    if any(backwards for _, backwards in steps):
        return Verdict(False, messages.GUARD_BACKWARDS.format(plan=", ".join(names)), names, fingerprint)
    if _fresh_database(using=using):
        return Verdict(True, messages.GUARD_FRESH_DATABASE, names, fingerprint)
    max_age = dt.timedelta(hours=settings.PREFLIGHT_MAX_AGE_HOURS)
    moment = now or timezone.now()
    passed = latest = None
    # Without the table the preflight's own first migration is part of this plan: no preflight is recorded here yet.
    if PreflightRun._meta.db_table in connections[using].introspection.table_names():
        # Only a preflight that copied this database counts: one run with --source tried another database's rows
        # (an old snapshot, an empty fixture) and would let a plan through that production's data breaks.
        runs = PreflightRun.objects.using(using).filter(plan_fingerprint=fingerprint,
                                                        **{f"report__{OTHER_SOURCE_KEY}__isnull": True})
        passed = runs.filter(passed=True).order_by("-data_taken_at").first()
        latest = runs.order_by("-started_at").first()
    plan_text = ", ".join(names)
    if passed is not None and passed.data_taken_at >= moment - max_age:
        return Verdict(True, messages.GUARD_PASSED.format(
            plan=plan_text, taken_at=f"{passed.data_taken_at:%Y-%m-%d %H:%M} UTC"), names, fingerprint, passed)
    if passed is not None:
        return Verdict(False, messages.GUARD_STALE.format(
            plan=plan_text, taken_at=f"{passed.data_taken_at:%Y-%m-%d %H:%M} UTC",
            hours=f"{settings.PREFLIGHT_MAX_AGE_HOURS:g}"), names, fingerprint, passed)
    if latest is not None:
        return Verdict(False, messages.GUARD_FAILED.format(
            plan=plan_text, started_at=f"{latest.started_at:%Y-%m-%d %H:%M} UTC"), names, fingerprint, latest)
    return Verdict(False, messages.GUARD_NO_PREFLIGHT.format(plan=plan_text, fingerprint=fingerprint[:12]),
                   names, fingerprint)


def record_override(*, verdict: Verdict, reason: str, using: str = DEFAULT_DB_ALIAS,
                    by: str | None = None) -> GuardOverride | None:
    """Write down that ``verdict``'s plan was applied without the guard's consent; None while the table does not exist
    yet (the preflight app's first migration is part of the plan): the caller records it again once applied."""
    if GuardOverride._meta.db_table not in connections[using].introspection.table_names():
        return None
    return GuardOverride.objects.using(using).create(
        plan_fingerprint=verdict.fingerprint, plan=verdict.plan, reason=reason.strip(), by=by or _operator(),
    )


def _operator() -> str:
    try:
        return getpass.getuser()[:150]
    except (KeyError, OSError):  # no user name in the environment or the password database (some containers)
        return "unknown"
