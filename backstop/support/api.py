from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status

from backstop.lib.http import client_ip
from backstop.support.contact import receive_contact

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
    """Write to support. The answer says what we see only to the signed-in owner of the address; everyone else
    is told that the details went to the address on file."""
    result = receive_contact(email=payload.email, text=payload.message, reference=payload.reference,
                                      ip=client_ip(request))
    return Status(202, {"reference": result.contact.our_reference, "message": result.reply_for(request.user)})
