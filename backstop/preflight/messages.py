"""What the preflight app says: the deploy guard's verdicts (each says what happened and what to do next)."""

from __future__ import annotations

GUARD_NOTHING_TO_APPLY = "No migrations to apply."
GUARD_OFF = "The migration guard is off (BACKSTOP_MIGRATION_GUARD=off): applying without a preflight."
GUARD_FRESH_DATABASE = "An empty database (no migration applied yet): nothing for a preflight to try; applying."
GUARD_PASSED = "The preflight of this plan ({plan}) passed on data taken at {taken_at}: applying."
GUARD_NO_PREFLIGHT = (
    "Refused: no preflight has run for this migration plan ({plan}; fingerprint {fingerprint}). Run `backstop "
    "preflight` against this database, read its report, and run `backstop migrate` again once it passes. If the "
    "database must change now anyway, `backstop migrate --force --reason \"...\"` applies it and records who and why."
)
GUARD_FAILED = (
    "Refused: the preflight of this migration plan ({plan}) started at {started_at} did not pass. Read its report "
    "(`backstop preflight` again prints it), fix the data or the migration, and run `backstop preflight` until it "
    "passes. See docs/runbooks/migration-failure.md."
)
GUARD_STALE = (
    "Refused: the last passing preflight of this migration plan ({plan}) ran on data taken at {taken_at}, older than "
    "{hours} h (BACKSTOP_PREFLIGHT_MAX_AGE_HOURS): production's data may have changed since. Run `backstop preflight` "
    "again, then `backstop migrate`."
)
GUARD_BACKWARDS = (
    "Refused: this plan unapplies migrations ({plan}), which no preflight tries. A rollback is a decision made in an "
    "incident: follow docs/runbooks/migration-failure.md and run it with `backstop migrate <app> <migration> --force "
    "--reason \"...\"`, which records who and why."
)
GUARD_FORCE_NEEDS_REASON = "--force needs --reason \"...\": why the plan must be applied without a passing preflight."
GUARD_OVERRIDDEN = "Guard overridden by {by} ({reason}): applying {plan} without a passing preflight. Recorded."
SERVE_REFUSED = "backstop {command} --migrate: {why}"
