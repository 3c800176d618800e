from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status

from backstop.lib.http import client_ip
from backstop.support.contact import owner_wait_seconds, receive_contact, wait_for_answer

router = Router(tags=["support"])


class ContactIn(Schema):
    email: str
    message: str
    reference: str = ""


class ContactOut(Schema):
    reference: str
    message: str


class ErrorOut(Schema):
    code: str
    message: str
    fields: dict[str, str] | None = None


@router.post("/contact", response={202: ContactOut, 400: ErrorOut, 429: ErrorOut})
def contact(request: HttpRequest, payload: ContactIn) -> Status[dict[str, Any]]:
    """Write to support. The answer says what we see only to the signed-in owner of the address (who waits for the
    look-up); everyone else is told at once, in the same words for any address, that the details go to the address
    on file."""
    result = receive_contact(email=payload.email, text=payload.message, reference=payload.reference,
                             ip=client_ip(request), requester=request.user)
    if result.contact.from_owner:  # only the signed-in owner waits for what the workflow finds
        result = wait_for_answer(result, seconds=owner_wait_seconds())
    return Status(202, {"reference": result.contact.our_reference, "message": result.reply_for(request.user)})
