"""The workspace's notes: list, create and change them, each change made on the version it was typed on."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from backstop.lib.errors import InvalidInput
from backstop.workspaces import messages
from backstop.workspaces.models import Note, Workspace

MAX_TITLE = 200
MAX_BODY = 50_000
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class NoteChanged(Exception):
    """The note moved on since the version the change was made on; ``current`` is the saved one."""

    def __init__(self, current: Note) -> None:
        super().__init__(f"note {current.pk} is at version {current.version}")
        self.current = current


def workspace_of(*, account_id: int) -> Workspace | None:
    return Workspace.objects.filter(account_id=account_id).first()


def notes_of(*, account_id: int) -> list[Note]:
    return list(Note.objects.filter(workspace__account_id=account_id)[:500])


def note_of(*, account_id: int, note_id: int) -> Note:
    """The account's own note (Note.DoesNotExist for anyone else's: a 404, not a 403, so ids tell nothing)."""
    return Note.objects.get(pk=note_id, workspace__account_id=account_id)


def _clean(title: str, body: str) -> tuple[str, str]:
    errors: dict[str, str] = {}
    title = title.strip()
    if not title:
        errors["title"] = messages.FIELD_TITLE
    elif len(title) > MAX_TITLE:
        errors["title"] = messages.FIELD_TOO_LONG.format(limit=MAX_TITLE)
    elif CONTROL.search(title) or "\n" in title:
        errors["title"] = messages.FIELD_CONTROL_CHARACTERS
    if len(body) > MAX_BODY:
        errors["body"] = messages.FIELD_TOO_LONG.format(limit=MAX_BODY)
    elif CONTROL.search(body):
        errors["body"] = messages.FIELD_CONTROL_CHARACTERS
    if errors:
        raise InvalidInput(errors)
    return title, body


def create_note(*, account_id: int, title: str, body: str, key: str) -> Note:
    """A new note in the account's workspace, once per ``key`` (the same form sent again is the same note)."""
    title, body = _clean(title, body)
    workspace = Workspace.objects.get(account_id=account_id)
    created_key = key[:80]
    if created_key and (existing := Note.objects.filter(workspace=workspace, created_key=created_key).first()):
        return existing
    try:
        with transaction.atomic():
            return Note.objects.create(workspace=workspace, title=title, body=body, created_key=created_key,
                                       last_key=created_key)
    except IntegrityError:  # the same form, sent twice at once: the other one made it
        return Note.objects.get(workspace=workspace, created_key=created_key)


def update_note(*, account_id: int, note_id: int, title: str, body: str, base_version: int, key: str) -> Note:
    """Change the note if it is still at ``base_version``; NoteChanged (nothing written) when it moved on. The same
    ``key`` as the change that made the current version is that change, answered again."""
    title, body = _clean(title, body)
    note = note_of(account_id=account_id, note_id=note_id)
    key = key[:80]
    if key and note.last_key == key:
        return note
    changed = Note.objects.filter(pk=note.pk, version=base_version).update(
        title=title, body=body, version=F("version") + 1, last_key=key, updated_at=timezone.now())
    note.refresh_from_db()
    if not changed:
        if key and note.last_key == key:  # the same form, sent twice at once
            return note
        raise NoteChanged(note)
    return note
