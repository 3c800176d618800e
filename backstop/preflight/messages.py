"""What the preflight says: each data check and lint rule's title, what it found, and the safe way (expand/contract);
and the deploy guard's verdicts (each says what happened and what to do next).

Registries, not scattered strings: tests check that every check and rule the code can report has a complete entry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckText:
    title: str
    found: str  # formatted with count=, table=, what=
    fix: str


@dataclass(frozen=True)
class RuleText:
    title: str
    why: str
    recipe: str  # the expand/contract way to get the same schema without breaking the running code or blocking


DATA_CHECKS: dict[str, CheckText] = {
    "duplicates": CheckText(
        title="duplicates before a unique constraint",
        found="{count} values of {what} in {table} are held by more than one row: the constraint cannot be built",
        fix="Merge or rename the duplicate rows in a data migration (fill_...) that runs before the constraint, "
            "and make the code stop writing new ones first (validate in the form/service).",
    ),
    "nulls": CheckText(
        title="NULLs before NOT NULL",
        found="{count} rows of {table} hold NULL in {what}, which becomes NOT NULL without a default",
        fix="Fill the NULLs in a data migration (fill_...) before the alter, or give the field a default; make the "
            "running code stop writing NULL first.",
    ),
    "orphans": CheckText(
        title="orphans before a foreign key",
        found="{count} rows of {table} point with {what} at rows that do not exist",
        fix="Delete, re-point or NULL the orphans in a data migration before the foreign key is added.",
    ),
    "too_long": CheckText(
        title="values longer than a new max_length",
        found="{count} rows of {table} hold a value of {what} longer than the new limit",
        fix="Shorten or move the long values in a data migration first, or keep the larger limit.",
    ),
    "outside_choices": CheckText(
        title="values outside the new choices",
        found="{count} rows of {table} hold a value of {what} that the new choices do not list",
        fix="Map the old values onto new choices in a data migration first, or keep the old choices listed.",
    ),
    "precondition": CheckText(
        title="a declared precondition",
        found="{count} rows returned by the precondition \"{what}\"",
        fix="The migration's author declared that this query must return no rows: fix the rows it names first.",
    ),
    "check_failed": CheckText(
        title="a check that could not run",
        found="the check of {what} on {table} could not run ({count} errors)",
        fix="Read the error: the preflight could not prove the data fits; treat it as a failure until it does.",
    ),
}

LINT_RULES: dict[str, RuleText] = {
    "drop_column": RuleText(
        title="drops a column the running code still reads",
        why="During the deploy the old release still selects and inserts this column: every query of the model "
            "fails from the moment the migration commits until the new code runs.",
        recipe="Expand/contract: release 1 stops using the field (remove it from the model and its queries, keep "
               "the column with a default or NULL allowed); release 2, once no running code names it, drops it.",
    ),
    "rename_column": RuleText(
        title="renames a column the running code still reads",
        why="The old release keeps querying the old name until it is replaced: its queries fail meanwhile.",
        recipe="Expand/contract: add the new column; write both; backfill the new one; read the new one; stop "
               "writing the old one; drop it in a later release. Or keep the column and set db_column on the field.",
    ),
    "drop_table": RuleText(
        title="drops a table the running code still reads",
        why="The old release still queries the table until the new code replaces it.",
        recipe="Expand/contract: release 1 removes every use of the model; release 2 deletes it.",
    ),
    "rename_table": RuleText(
        title="renames a table the running code still reads",
        why="The old release queries the old table name until it is replaced.",
        recipe="Keep the table name (set Meta.db_table to the old name) or copy into a new table over several "
               "releases (write both, backfill, read new, drop old).",
    ),
    "not_null_without_db_default": RuleText(
        title="adds a NOT NULL column without a database default",
        why="Django drops the default after adding the column, so the old release's INSERTs, which do not name "
            "the new column, fail with a NOT NULL violation until the new code runs.",
        recipe="Expand/contract: add the column with db_default (or null=True), deploy the code that writes it, "
               "backfill, then make it NOT NULL in a later release.",
    ),
    "set_not_null": RuleText(
        title="makes an existing column NOT NULL",
        why="The old release may still write NULL there; on PostgreSQL SET NOT NULL also scans the whole table "
            "under an ACCESS EXCLUSIVE lock.",
        recipe="Deploy code that never writes NULL first; backfill; on PostgreSQL add CHECK (col IS NOT NULL) NOT "
               "VALID, VALIDATE it (no write lock), then SET NOT NULL, which uses the validated check.",
    ),
    "change_column_type": RuleText(
        title="changes a column's type",
        why="Most type changes rewrite the table under an ACCESS EXCLUSIVE lock, and the old release may write "
            "values the new type refuses.",
        recipe="Expand/contract: add a column of the new type, write both, backfill in batches, switch reads, "
               "stop writing the old one, drop it in a later release.",
    ),
    "irreversible": RuleText(
        title="cannot be reversed",
        why="A RunPython or RunSQL without a reverse leaves no way back but a restore if the release is rolled back.",
        recipe="Give it a reverse (RunPython.noop when undoing needs nothing) so `migrate app previous` works.",
    ),
    "squawk": RuleText(
        title="PostgreSQL lock hazard (squawk)",
        why="squawk read the SQL this migration runs on PostgreSQL and found a statement that blocks reads or "
            "writes, or fails on a busy table.",
        recipe="Follow squawk's help for the rule (https://squawkhq.com/docs/rules); for indexes, use "
               "AddIndexConcurrently / a non-atomic migration; set lock_timeout so a blocked DDL gives up.",
    ),
}

LINT_SKIPPED_ON_SQLITE = (
    "squawk reads PostgreSQL SQL only; this database is SQLite, and Django's PostgreSQL SQL for a migration needs a "
    "PostgreSQL connection to introspect, so squawk was skipped. The backward-compatibility rules ran."
)
LINT_SKIPPED_NO_SQUAWK = "squawk is not installed (pip install squawk-cli): the SQL was not linted for lock hazards."
PLAN_MISMATCH = (
    "The copy does not stand where production stands: its pending plan is {copy_plan}, production's is {plan}. "
    "Take a new snapshot of production and run the preflight again."
)
NOTHING_PENDING = "No migration is pending: there is nothing to try."
NOT_RUN = "not run: an earlier migration of the plan failed"
OTHER_SOURCE = (
    "This preflight copied {source}, not this database: its verdict is kept but the deploy guard does not count it "
    "(another database's rows, of any age, say nothing about this one's). Run `backstop preflight` without --source "
    "against the database `backstop migrate` will change."
)
NOT_SAVED = (
    "This database has no preflight table yet (the plan creates it), so this verdict was not saved: the deploy guard "
    "cannot rely on it."
)


# --- The deploy guard (guard.py): each verdict says what happened and what to do ----------------------------------

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
