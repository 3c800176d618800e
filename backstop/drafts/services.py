"""Drafts on the server: read, save (versioned, idempotent), discard, and forget the old ones.

Every function takes the owner the request proved (``owners.draft_owner``); nothing here looks a draft up by its id.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from backstop.drafts import messages
from backstop.drafts.models import Draft
from backstop.lib.errors import InvalidInput
from backstop.ratelimits.services import Limit, check_rate_limit

SURFACE = re.compile(r"[a-z][a-z0-9-]{0,39}(:[A-Za-z0-9_-]{1,40})?")
FIELD_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
RESERVED_SURFACES = frozenset({"ping"})
MAX_FIELDS = 20
# Visitors without an account make drafts under a cookie they can throw away: new ones are counted per address.
ANONYMOUS_NEW_DRAFTS = Limit(per_ip=120, per_email=0, window_seconds=3600)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class SaveResult:
    version: int
    updated_at: dt.datetime
    # The save had already been applied (the same id came again, its answer lost), or the draft already held its
    # text: nothing was written this time.
    replayed: bool = False


class DraftConflict(Exception):
    """The draft moved on since the version the save was typed on; ``current`` is the server's copy."""

    def __init__(self, current: Draft) -> None:
        super().__init__(f"draft {current.surface} is at version {current.version}")
        self.current = current


def check_surface(surface: str) -> str:
    if not SURFACE.fullmatch(surface) or surface in RESERVED_SURFACES:
        raise InvalidInput({"surface": messages.FIELD_SURFACE})
    return surface


def _check_fields(fields: Any) -> dict[str, str]:
    if (not isinstance(fields, dict) or len(fields) > MAX_FIELDS
            or not all(isinstance(k, str) and FIELD_NAME.fullmatch(k) and isinstance(v, str)
                       for k, v in fields.items())):
        raise InvalidInput({"fields": messages.FIELD_FIELDS.format(count=MAX_FIELDS)})
    if sum(len(v) for v in fields.values()) > settings.DRAFT_MAX_CHARS:
        raise InvalidInput({"fields": messages.FIELD_TOO_LONG.format(limit=settings.DRAFT_MAX_CHARS)})
    if any(CONTROL.search(v) for v in fields.values()):
        raise InvalidInput({"fields": messages.FIELD_CONTROL_CHARACTERS})
    return dict(fields)


def get_draft(*, owner: str, surface: str) -> Draft | None:
    return Draft.objects.filter(owner=owner, surface=check_surface(surface)).first()


def save_draft(
    *, owner: str, surface: str, fields: dict[str, str], base_version: int, save_id: uuid.UUID, device: str = "",
    ip: str = "",
) -> SaveResult:
    """Write ``fields`` as the next version of the owner's draft of ``surface``, if it is still at ``base_version``.

    ``base_version`` 0 starts a draft; a draft that is gone (sent from another tab, discarded, expired) starts again
    from whatever version the save names. A save is never applied twice: sent again with the same ``save_id`` it is
    answered with the version it wrote. A save typed on an older version raises DraftConflict with the server's
    copy, unless that copy already holds the same text.
    """
    check_surface(surface)
    fields = _check_fields(fields)
    if base_version < 0:
        raise InvalidInput({"base_version": messages.FIELD_BASE_VERSION})
    now = timezone.now()
    # The usual save is one statement: the conditional UPDATE is the concurrency check (of two saves typed on one
    # version, one changes a row).
    if base_version and _update_if_at(owner=owner, surface=surface, base_version=base_version, fields=fields,
                                      save_id=save_id, device=device, now=now):
        return SaveResult(version=base_version + 1, updated_at=now)
    current = Draft.objects.filter(owner=owner, surface=surface).first()
    if current is None:
        _check_new_draft(owner=owner, ip=ip)
        try:
            with transaction.atomic():
                Draft.objects.create(owner=owner, surface=surface, fields=fields, version=base_version + 1,
                                     last_save_id=save_id, device=device, created_at=now, updated_at=now)
            return SaveResult(version=base_version + 1, updated_at=now)
        except IntegrityError:  # another tab started it at the same moment
            current = Draft.objects.get(owner=owner, surface=surface)
    if current.last_save_id == save_id or current.fields == fields:
        return SaveResult(version=current.version, updated_at=current.updated_at, replayed=True)
    raise DraftConflict(current)


def _field(name: str) -> models.Field[Any, Any]:
    field = Draft._meta.get_field(name)
    assert isinstance(field, models.Field)
    return field


@cache
def _update_statement() -> str:
    # Names from the model, quoted by the database's own rules; every value is a parameter.
    def column(name: str) -> str:
        return connection.ops.quote_name(_field(name).column)

    return (f"UPDATE {connection.ops.quote_name(Draft._meta.db_table)} SET {column('fields')} = %s, "  # noqa: S608
            f"{column('version')} = %s, {column('last_save_id')} = %s, {column('device')} = %s, "
            f"{column('updated_at')} = %s WHERE {column('owner')} = %s AND {column('surface')} = %s "
            f"AND {column('version')} = %s")


def _update_if_at(*, owner: str, surface: str, base_version: int, fields: dict[str, str], save_id: uuid.UUID,
                  device: str, now: dt.datetime) -> bool:
    """The usual save's UPDATE, written out: the ORM spent more CPU building this statement than PostgreSQL spends
    running it (a save comes every few seconds from every open editor). The values go through each field's own
    preparation, so both databases get what the ORM would send them."""
    def prep(name: str, value: Any) -> Any:
        return _field(name).get_db_prep_save(value, connection)

    with connection.cursor() as cursor:
        cursor.execute(_update_statement(), [
            prep("fields", fields), base_version + 1, prep("last_save_id", save_id), device,
            prep("updated_at", now), owner, surface, base_version])
        return cursor.rowcount == 1


def _check_new_draft(*, owner: str, ip: str) -> None:
    if Draft.objects.filter(owner=owner).count() >= settings.DRAFT_MAX_PER_OWNER:
        raise InvalidInput({"surface": messages.TOO_MANY_DRAFTS.format(limit=settings.DRAFT_MAX_PER_OWNER)})
    if owner.startswith("anon:"):
        check_rate_limit(action="draft-new", limit=ANONYMOUS_NEW_DRAFTS, ip=ip, email_key=None)


def discard_draft(*, owner: str, surface: str) -> bool:
    """Forget the owner's draft of ``surface`` (sent, or thrown away by its owner). True when there was one."""
    deleted, _ = Draft.objects.filter(owner=owner, surface=check_surface(surface)).delete()
    return bool(deleted)


def delete_expired_drafts(*, now: dt.datetime | None = None) -> int:
    """Drafts untouched for DRAFT_KEEP_DAYS go. Returns how many."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.DRAFT_KEEP_DAYS)
    deleted = 0
    # In slices, so a backlog never holds a long transaction.
    while ids := list(Draft.objects.filter(updated_at__lt=cutoff).values_list("pk", flat=True)[:1000]):
        deleted += Draft.objects.filter(pk__in=ids).delete()[0]
    return deleted
