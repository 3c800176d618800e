"""A contact's answer, as a guarded operation: the Contact row is its intent, ``contact:<our reference>`` its workflow.

The request that received the contact only wrote the row; everything that depends on the address (the account, its
case, the fixes, the processor's look-ups, the acknowledgement) runs here, after the answer went out.
"""

from __future__ import annotations

import logging

from backstop.runtime.guarded import Attention, GuardedOperation
from backstop.runtime.retrying import AttemptResult, failed_attempt
from backstop.support import contact

SUPPORT_QUEUE = "support"
logger = logging.getLogger(__name__)


def _answer(contact_id: int, attempt: int) -> AttemptResult:
    try:
        contact.answer_contact(contact_id=contact_id)
    except Exception as error:  # our own code or the database failed: tried again, then a person reads it as written
        logger.exception("answering contact %s failed (attempt %s)", contact_id, attempt)
        return failed_attempt(attempt, f"{type(error).__name__}: {error}"[:500])
    return {"status": "done", "retry_in": 0.0, "error": ""}


def _give_up(contact_id: int, failed: list[str]) -> Attention | None:
    contact.give_up_on_contact(contact_id=contact_id)
    return None  # the contact's signal puts the case in the queue: a person reads it


contact_answer = GuardedOperation(
    "contact", queue=SUPPORT_QUEUE, steps={"answer": _answer}, give_up=_give_up,
    stranded=contact.unanswered_contacts,
)
