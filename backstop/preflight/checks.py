"""Data checks: read each operation of a migration and ask the copy whether its data fits what the operation assumes.

They run on the copy right before the migration applies there, so they see the data the migration will meet,
including what earlier migrations of the plan filled or fixed (schema -> fill_<field> -> alter). Queries are built
with the historical models of the project state at that point, so they compare the way the database will: a unique
constraint on ``Lower("company")`` groups by ``lower(company)``, a condition filters, NULLs are distinct unless the
constraint says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import DatabaseError, connections, models, transaction
from django.db.migrations import operations as ops
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState
from django.db.models import Count, F, Q
from django.db.models.expressions import OrderBy
from django.db.models.functions import Length

from backstop.preflight import messages

SAMPLE_ROWS = 20  # offending rows named per finding; the count says how many there are in all


@dataclass
class Finding:
    check: str  # a key of messages.DATA_CHECKS
    table: str
    what: str  # the key, column or precondition it is about
    count: int
    operation: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)  # {"pk": ..., "values": {...}} (+ "key" for duplicates)
    error: str = ""

    @property
    def message(self) -> str:
        return messages.DATA_CHECKS[self.check].found.format(count=self.count, table=self.table, what=self.what)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message, "fix": messages.DATA_CHECKS[self.check].fix}


# Operations that change rows in ways no check can foresee.
_DATA_CHANGES = (ops.RunPython, ops.RunSQL)


def check_migration(migration: Migration, state: ProjectState, *, alias: str) -> list[Finding]:
    """Every finding for ``migration``, on the database ``alias`` whose schema stands at ``state`` (not mutated)."""
    findings: list[Finding] = []
    before = state.clone()
    for operation in migration.operations:
        if isinstance(operation, _DATA_CHANGES):
            # The operations after it meet the rows it leaves, which only running it shows: checked on the rows of
            # now, a data migration's own fix would count as its failure. The run on the copy judges them; its error
            # names the rows when the fix fell short.
            break
        after = before.clone()
        operation.state_forwards(migration.app_label, after)
        try:
            findings.extend(_check_operation(operation, migration.app_label, before, after, alias=alias))
        except Exception as error:  # a check that cannot run proves nothing: say so, never pass silently
            findings.append(Finding(check="check_failed", table=_table_of(operation, migration.app_label, before),
                                    what=operation.describe(), count=1, operation=operation.describe(),
                                    error=f"{type(error).__name__}: {error}"))
        before = after
    findings.extend(check_preconditions(migration, alias=alias))
    return findings


def _table_of(operation: ops.base.Operation, app_label: str, state: ProjectState) -> str:
    model_name = getattr(operation, "model_name", None) or getattr(operation, "name", "")
    model_state = state.models.get((app_label, str(model_name).lower()))
    if model_state is None:
        return str(model_name)
    return model_state.options.get("db_table") or f"{app_label}_{model_state.name_lower}"


def _check_operation(
    operation: ops.base.Operation, app_label: str, before: ProjectState, after: ProjectState, *, alias: str
) -> list[Finding]:
    described = operation.describe()
    constraint = getattr(operation, "constraint", None)
    if isinstance(operation, ops.AddConstraint) and isinstance(constraint, models.UniqueConstraint):
        model = before.apps.get_model(app_label, getattr(operation, "model_name"))  # noqa: B009 (untyped in stubs)
        keys: list[Any] = list(constraint.fields) or list(constraint.expressions)
        return _duplicates(model, keys, condition=constraint.condition,
                           nulls_distinct=constraint.nulls_distinct is not False, alias=alias, operation=described)
    if isinstance(operation, ops.AddField) and operation.field.unique and not operation.field.primary_key:
        return _one_default_for_every_row(before.apps.get_model(app_label, operation.model_name), operation.field,
                                          alias=alias, operation=described)
    if isinstance(operation, ops.AlterUniqueTogether):
        model = before.apps.get_model(app_label, operation.name)
        old = {tuple(fields) for fields in (model._meta.unique_together or ())}
        found: list[Finding] = []
        for fields in operation.unique_together or ():
            if tuple(fields) not in old:
                found += _duplicates(model, list(fields), condition=None, nulls_distinct=True, alias=alias,
                                     operation=described)
        return found
    if isinstance(operation, ops.AlterField):
        model = before.apps.get_model(app_label, operation.model_name)
        old_field: Any = model._meta.get_field(operation.name)
        new_model = after.apps.get_model(app_label, operation.model_name)
        new_field: Any = new_model._meta.get_field(operation.name)
        return _altered_field(model, old_field, new_field, alias=alias, operation=described)
    return []


def _altered_field(model: type[models.Model], old: Any, new: Any, *, alias: str, operation: str) -> list[Finding]:
    found: list[Finding] = []
    table = model._meta.db_table
    rows = model._base_manager.using(alias)
    if new.unique and not old.unique and not new.primary_key:
        found += _duplicates(model, [old.name], condition=None, nulls_distinct=True, alias=alias, operation=operation)
    has_default = new.has_default() or getattr(new, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED
    if old.null and not new.null and not has_default:
        offending = rows.filter(**{f"{old.name}__isnull": True})
        found += _finding("nulls", table, old.column, offending, [old.attname], operation=operation)
    if new.many_to_one and new.db_constraint and not (old.many_to_one and old.db_constraint):
        found += _orphans(model, old, new, alias=alias, operation=operation)
    new_limit = getattr(new, "max_length", None)
    old_limit = getattr(old, "max_length", None)
    if new_limit is not None and (old_limit is None or new_limit < old_limit):
        offending = rows.annotate(_preflight_length=Length(old.name)).filter(_preflight_length__gt=new_limit)
        found += _finding("too_long", table, f"{old.column} (limit {new_limit})", offending, [old.attname],
                          operation=operation)
    if new.choices and list(new.flatchoices) != list(old.flatchoices or []):
        allowed = [value for value, _label in new.flatchoices]
        offending = rows.exclude(**{f"{old.name}__in": allowed}).exclude(**{f"{old.name}__isnull": True})
        if new.blank:
            offending = offending.exclude(**{old.name: ""})
        found += _finding("outside_choices", table, old.column, offending, [old.attname], operation=operation)
    return found


def _one_default_for_every_row(model: type[models.Model], field: Any, *, alias: str, operation: str) -> list[Finding]:
    """A new unique column filled with one default: every existing row gets the same value (NULLs never collide)."""
    has_default = field.has_default() or getattr(field, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED
    if field.null and not has_default:
        return []
    rows = model._base_manager.using(alias).order_by("pk")
    count = rows.count()
    if count < 2:
        return []
    sample = [{"pk": pk, "values": {}, "key": ["(the default)"]}
              for pk in rows.values_list("pk", flat=True)[:SAMPLE_ROWS]]
    return [Finding(check="duplicates", table=model._meta.db_table,
                    what=f"{field.name} (the one default every existing row gets; {count} rows)", count=1,
                    operation=operation, rows=sample)]


def _finding(
    check: str, table: str, what: str, offending: models.QuerySet[Any], columns: list[str], *, operation: str
) -> list[Finding]:
    count = offending.count()
    if not count:
        return []
    sample = offending.order_by("pk").values("pk", *columns)[:SAMPLE_ROWS]
    rows = [{"pk": row.pop("pk"), "values": row} for row in sample]
    return [Finding(check=check, table=table, what=what, count=count, operation=operation, rows=rows)]


def _referenced_fields(model: type[models.Model], key: Any) -> list[str]:
    """The concrete columns (attnames) a constraint key reads: a field name, or the F()s inside an expression."""
    if isinstance(key, str):
        return [_attname(model, key)]
    names = [node.name for node in key.flatten() if isinstance(node, F)]
    return [_attname(model, name.split("__")[0]) for name in names]


def _attname(model: type[models.Model], name: str) -> str:
    field: Any = model._meta.get_field(name)
    return str(field.attname)


def _duplicates(
    model: type[models.Model], keys: list[Any], *, condition: Q | None, nulls_distinct: bool, alias: str,
    operation: str,
) -> list[Finding]:
    """Groups of rows the constraint would find equal: compared through the constraint's own expressions."""
    rows = model._base_manager.using(alias).all()
    if condition is not None:
        rows = rows.filter(condition)
    annotations: dict[str, Any] = {}
    for position, key in enumerate(keys):
        expression = key.expression if isinstance(key, OrderBy) else key  # Lower("x").desc(): the order is no matter
        annotations[f"_preflight_key{position}"] = F(expression) if isinstance(expression, str) else expression
    rows = rows.annotate(**annotations)
    if nulls_distinct:  # NULL equals nothing, not even NULL, so rows with a NULL key never collide
        for name in annotations:
            rows = rows.filter(**{f"{name}__isnull": False})
    groups = rows.values(*annotations).annotate(_preflight_rows=Count("pk")).filter(_preflight_rows__gt=1)
    count = groups.count()
    if not count:
        return []
    what = ", ".join(key if isinstance(key, str) else str(key) for key in keys)
    columns = sorted({column for key in keys for column in _referenced_fields(model, key)})
    sample_rows: list[dict[str, Any]] = []
    for group in groups.order_by(*annotations)[:SAMPLE_ROWS]:
        values = [group[name] for name in annotations]
        members = rows.filter(**{name: group[name] for name in annotations}).order_by("pk")
        for member in members.values("pk", *columns):
            sample_rows.append({"pk": member.pop("pk"), "values": member, "key": values})
        if len(sample_rows) >= SAMPLE_ROWS:
            break
    return [Finding(check="duplicates", table=model._meta.db_table, what=what, count=count, operation=operation,
                    rows=sample_rows)]


def _orphans(model: type[models.Model], old: Any, new: Any, *, alias: str, operation: str) -> list[Finding]:
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = model._meta.db_table
    target_table = new.related_model._meta.db_table
    target_column = new.target_field.column
    pk_column = model._meta.pk.column
    # Names only, each quoted by the backend; no value is interpolated.
    where = (f"FROM {quote(table)} t WHERE t.{quote(old.column)} IS NOT NULL AND NOT EXISTS "  # noqa: S608
             f"(SELECT 1 FROM {quote(target_table)} p WHERE p.{quote(target_column)} = t.{quote(old.column)})")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) {where}")
        count = cursor.fetchone()[0]
        if not count:
            return []
        cursor.execute(f"SELECT t.{quote(pk_column)}, t.{quote(old.column)} {where} "
                       f"ORDER BY 1 LIMIT {SAMPLE_ROWS}")
        rows = [{"pk": pk, "values": {old.column: value}} for pk, value in cursor.fetchall()]
    return [Finding(check="orphans", table=table, what=f"{old.column} -> {target_table}.{target_column}",
                    count=count, operation=operation, rows=rows)]


def check_preconditions(migration: Migration, *, alias: str) -> list[Finding]:
    """``Migration.preconditions = [("why", "SQL that must return no rows"), ...]``: each, run on the copy."""
    found: list[Finding] = []
    for why, sql in getattr(migration, "preconditions", ()):
        try:
            with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
                cursor.execute(sql)
                names = [column[0] for column in cursor.description or ()]
                returned = cursor.fetchmany(SAMPLE_ROWS + 1)
        except DatabaseError as error:  # a precondition that cannot run proves nothing
            found.append(Finding(check="check_failed", table="", what=why, count=1, operation="preconditions",
                                 error=" ".join(str(error).split())))
            continue
        if returned:
            rows = [{"pk": row[0], "values": dict(zip(names, row, strict=False))} for row in returned[:SAMPLE_ROWS]]
            count = len(returned)  # at least: the query is the author's, we do not rewrite it into a count
            found.append(Finding(check="precondition", table="", what=why, count=count, operation="preconditions",
                                 rows=rows))
    return found
