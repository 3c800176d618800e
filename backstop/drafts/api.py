"""The drafts API: a page's script reads, saves and discards the requester's own drafts here.

Saves are PUT with a JSON body (a page elsewhere cannot send either without our leave) and a CSRF token.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.errors import HttpError
from ninja.utils import check_csrf
from pydantic import Field

from backstop.drafts import messages
from backstop.drafts.models import Draft
from backstop.drafts.owners import draft_owner, owner_scope
from backstop.drafts.services import DraftConflict, discard_draft, get_draft, save_draft
from backstop.lib.http import client_ip

router = Router(tags=["drafts"])


class DraftOut(Schema):
    surface: str
    fields: dict[str, str]
    version: int
    updated_at: dt.datetime
    device: str


class SaveIn(Schema):
    fields: dict[str, str]
    base_version: int = Field(ge=0)
    save_id: uuid.UUID
    device: str = Field(default="", max_length=64)
    # Whose page the text was typed on (``data-draft-scope``): a save never lands in another owner's drafts.
    scope: str = Field(default="", max_length=64)


class SavedOut(Schema):
    version: int
    updated_at: dt.datetime
    replayed: bool


class ErrorOut(Schema):
    code: str
    message: str
    fields: dict[str, str] | None = None


class ConflictOut(Schema):
    code: str
    message: str
    draft: DraftOut | None = None


def _out(draft: Draft) -> dict[str, Any]:
    return {"surface": draft.surface, "fields": draft.fields, "version": draft.version,
            "updated_at": draft.updated_at, "device": draft.device}


def _require_csrf(request: HttpRequest) -> None:
    if check_csrf(request) is not None:
        raise HttpError(403, "CSRF check failed")


@router.get("/ping", response={204: None})
def ping(request: HttpRequest) -> Status[None]:
    """Answers when the server does, touching nothing: pages ask it before sending what they kept."""
    return Status(204, None)


@router.get("/{surface}", response={200: DraftOut, 400: ErrorOut, 404: ErrorOut})
def read(request: HttpRequest, surface: str) -> Status[dict[str, Any]]:
    """The requester's own draft of ``surface`` (a signed-in person's, or this browser's when signed out)."""
    owner = draft_owner(request)
    found = get_draft(owner=owner, surface=surface) if owner else None
    if found is None:
        return Status(404, {"code": "no_draft", "message": messages.NO_DRAFT.text})
    return Status(200, _out(found))


@router.put("/{surface}", response={200: SavedOut, 400: ErrorOut, 403: ErrorOut, 409: ConflictOut, 429: ErrorOut})
def save(request: HttpRequest, surface: str, payload: SaveIn) -> Status[dict[str, Any]]:
    """Save the next version, typed on ``base_version`` (0: a new draft). 409 with the other version when the draft
    moved on meanwhile. The same ``save_id`` again is answered with the version it wrote, and writes nothing."""
    _require_csrf(request)
    owner = draft_owner(request, create=True)
    assert owner is not None
    if payload.scope and payload.scope != owner_scope(owner):
        # Signed out (or in as someone else) since the page was opened: saving would file the text under the wrong
        # person. The page keeps it and says why.
        return Status(403, {"code": "not_your_page", "message": messages.NOT_YOUR_PAGE.text})
    try:
        result = save_draft(owner=owner, surface=surface, fields=payload.fields, base_version=payload.base_version,
                            save_id=payload.save_id, device=payload.device, ip=client_ip(request))
    except DraftConflict as conflict:
        return Status(409, {"code": "draft_conflict", "message": messages.DRAFT_CONFLICT.text,
                            "draft": _out(conflict.current)})
    return Status(200, {"version": result.version, "updated_at": result.updated_at, "replayed": result.replayed})


@router.delete("/{surface}", response={204: None, 400: ErrorOut, 403: ErrorOut})
def discard(request: HttpRequest, surface: str) -> Status[None]:
    """Throw the requester's draft of ``surface`` away (nothing happens when there is none)."""
    _require_csrf(request)
    owner = draft_owner(request)
    if owner:
        discard_draft(owner=owner, surface=surface)
    return Status(204, None)
