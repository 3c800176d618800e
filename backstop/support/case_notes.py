"""Internal notes on a case: what one member of staff tells the others. Never sent to the customer."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from backstop.accounts.models import Account
from backstop.support import messages
from backstop.support.actions import ActionRefused
from backstop.support.models import Case, CaseNote
from backstop.support.search import index_case

MAX_NOTE_LENGTH = 20_000


def add_case_note(*, case_id: int, staff: Account, key: str, body: str) -> CaseNote:
    """Add the note once per ``key`` (a click): the same form sent again answers with the note it made."""
    body = body.strip()
    if not body:
        raise ActionRefused(messages.NOTE_EMPTY)
    case = Case.objects.get(pk=case_id)
    scoped_key = f"staff:{staff.pk}:note:{key}"[:120]
    try:
        with transaction.atomic():
            note = CaseNote.objects.create(case=case, staff=staff, body=body[:MAX_NOTE_LENGTH],
                                           idempotency_key=scoped_key)
    except IntegrityError:
        return CaseNote.objects.get(idempotency_key=scoped_key)
    index_case(case_id=case_id)
    return note
