"""Asking for a sign-in code by address (the recover page and ``POST /api/recover``), as a guarded operation.

The request validates the address, counts the attempt, writes an intent (a ``GuardedIntent`` row, the same for any
address) and starts its workflow, ``sign_in_code:<key>``; the look-up of the account and the code it sends run in
the workflow, after the answer. So the answer takes as long, and says the same, whether or not the address has an
account (docs/decisions.md, "Timing does not tell who has an account").
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.db import transaction
from django.utils import timezone

from backstop.accounts.devices import hash_code_browser
from backstop.accounts.signin import count_code_request, send_code_to_owner
from backstop.accounts.validation import clean_email
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput
from backstop.notify.models import DELIVERY_QUEUE
from backstop.runtime.guarded import Attention, GuardedOperation
from backstop.runtime.models import GuardedIntent, IntentState
from backstop.runtime.retrying import AttemptResult, failed_attempt

OPERATION = "sign_in_code"
logger = logging.getLogger(__name__)


def ask_for_sign_in_code(*, email: str, ip: str, device: str = "", browser: str = "") -> str:
    """Someone typed an address and asks for a code: validate it (InvalidInput for what is not an address), count
    the attempt, write the request down and start its workflow once it commits. Returns the address as cleaned.
    ``browser``: the asking browser's token (``devices.code_browser_token``), where the code has tries of its own."""
    errors: dict[str, str] = {}
    email = clean_email(email, errors)
    if errors:
        raise InvalidInput(errors)
    # The count reads the account (staff have their own budget; a known device is not held to the account's): one
    # indexed look-up, the same work found or not; the sending, whose cost would tell, runs in the workflow.
    count_code_request(email_key=email_key(email), ip=ip, device=device)
    with transaction.atomic():
        intent = GuardedIntent.objects.create(operation=OPERATION, key=uuid.uuid4().hex,
                                              payload={"email_key": email_key(email),
                                                       "browser_hash": hash_code_browser(browser)})
        code_by_address.start_after_commit(intent.pk, intent.key)
    return email


def _send(intent_id: int, attempt: int) -> AttemptResult:
    try:
        with transaction.atomic():
            intent = GuardedIntent.objects.select_for_update().get(pk=intent_id)
            if intent.state != IntentState.DONE:
                send_code_to_owner(email_key=str(intent.payload.get("email_key", "")),
                                   browser_hash=str(intent.payload.get("browser_hash", "")))
                # Done in the transaction that made the code: a step run again sends nothing more. The address is
                # forgotten once it has served.
                GuardedIntent.objects.filter(pk=intent_id).update(
                    state=IntentState.DONE, attempts=attempt, payload={}, last_error="", updated_at=timezone.now())
    except Exception as error:  # our own code or the database: tried again with backoff
        logger.exception("sending the sign-in code of request %s failed (attempt %s)", intent_id, attempt)
        return failed_attempt(attempt, f"{type(error).__name__}: {error}"[:500])
    return {"status": "done", "retry_in": 0.0, "error": ""}


def _give_up(intent_id: int, failed: list[str]) -> Attention | None:
    # The person was told "if an account exists, a code is on its way" and can ask again; the log has why.
    GuardedIntent.objects.filter(pk=intent_id).exclude(state=IntentState.DONE).update(
        state=IntentState.GIVEN_UP, payload={}, updated_at=timezone.now())
    return None


def _stranded(grace_seconds: float) -> list[tuple[int, str]]:
    before = timezone.now() - dt.timedelta(seconds=grace_seconds)
    return list(GuardedIntent.objects.filter(operation=OPERATION, state=IntentState.WAITING, attempts=0,
                                             created_at__lt=before)
                .order_by("created_at").values_list("pk", "key")[:200])


code_by_address = GuardedOperation(OPERATION, queue=DELIVERY_QUEUE, steps={"send": _send}, give_up=_give_up,
                                   stranded=_stranded)
