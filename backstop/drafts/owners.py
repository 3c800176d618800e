"""Whose drafts a request may touch: the signed-in account's, or a visitor's, named by a signed cookie.

A visitor's id is random and signed with the site's secret, so it can be neither guessed nor made up; a draft is
only ever found by (owner, surface), never by an id from the request.
"""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import salted_hmac

from backstop.drafts.services import SURFACE, discard_draft
from backstop.drafts.signed_in import signed_in_user_id

ANONYMOUS_COOKIE = "backstop_drafts"
_COOKIE_SALT = "backstop.drafts.anonymous"
_NEW_ID = "_backstop_new_draft_owner"
_PAGE = "_backstop_draft_page"


def draft_owner(request: HttpRequest, *, create: bool = False) -> str | None:
    """``user:<id>`` when signed in, else ``anon:<id>`` from the visitor's cookie (a new id when ``create``)."""
    # Not request.user: a save comes every few seconds from every open editor (see signed_in.py).
    user_id = signed_in_user_id(request)
    if user_id is not None:
        return f"user:{user_id}"
    anonymous = getattr(request, _NEW_ID, None) or _cookie_id(request)
    if anonymous is None and create:
        anonymous = uuid.uuid4().hex
        setattr(request, _NEW_ID, anonymous)
    return f"anon:{anonymous}" if anonymous else None


def _cookie_id(request: HttpRequest) -> str | None:
    value = request.get_signed_cookie(ANONYMOUS_COOKIE, default=None, salt=_COOKIE_SALT,
                                      max_age=settings.DRAFT_KEEP_DAYS * 86400)
    return value if value and re.fullmatch(r"[0-9a-f]{32}", value) else None


def owner_scope(owner: str | None) -> str:
    """What the browser files its local copies under: the owner, not reversible to an account id or cookie."""
    return salted_hmac("backstop.drafts.scope", owner or "nobody").hexdigest()[:24]


def remember_visitor(request: HttpRequest, response: HttpResponse) -> None:
    """Give (or renew) a visitor's signed cookie when this request made or used a visitor's draft id."""
    if signed_in_user_id(request) is not None:
        return
    anonymous = getattr(request, _NEW_ID, None) or _cookie_id(request)
    if anonymous is None:
        return
    response.set_signed_cookie(
        ANONYMOUS_COOKIE, anonymous, salt=_COOKIE_SALT, max_age=settings.DRAFT_KEEP_DAYS * 86400, httponly=True,
        samesite="Lax", secure=settings.SESSION_COOKIE_SECURE)


def made_visitor_id(request: HttpRequest) -> bool:
    return getattr(request, _NEW_ID, None) is not None


def mark_draft_page(request: HttpRequest) -> None:
    """This page has an editor with a draft: its script is loaded and the service worker keeps a copy of it."""
    setattr(request, _PAGE, True)


def is_draft_page(request: HttpRequest) -> bool:
    return bool(getattr(request, _PAGE, False))


def discard_submitted_draft(request: HttpRequest) -> None:
    """The form was taken: forget the draft it was typed in. A view calls this once its service call succeeded.

    The page's script names the surface in the form's ``draft_surface`` field; only the requester's own draft of
    that name can go.
    """
    surface = request.POST.get("draft_surface", "")
    owner = draft_owner(request)
    if owner and SURFACE.fullmatch(surface):
        discard_draft(owner=owner, surface=surface)
