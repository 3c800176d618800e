"""Who else has a case open, and what happened on it since a page was drawn: the case page asks every few seconds
(a heartbeat, plain polling: no connection held open per tab), and a reply is not sent over a newer message unseen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.support import messages
from backstop.support.models import (
    ActionOutcome,
    Case,
    CasePresence,
    Contact,
    InboundKind,
    InboundMessage,
    SupportAction,
)

HEARTBEAT_SECONDS = 5
# Three heartbeats missed: the tab is gone (closed without saying so, asleep, offline).
FRESH_SECONDS = 3 * HEARTBEAT_SECONDS + 2
MAX_TAB_LENGTH = 40


@dataclass(frozen=True)
class PresenceAnswer:
    others: list[str]
    newer: list[str]


def mark_present(*, case_id: int, staff: Account, tab: str, seen_through: str = "",
                 now: dt.datetime | None = None) -> PresenceAnswer:
    """This tab is on the case now; who else is (other staff, and this person's other tabs), and what is newer than
    what the page showed (``seen_through``, the page's ``timeline_marker``)."""
    now = now or timezone.now()
    tab = tab.strip()[:MAX_TAB_LENGTH] or "-"
    if not CasePresence.objects.filter(case_id=case_id, staff=staff, tab=tab).update(seen_at=now):
        try:
            with transaction.atomic():
                CasePresence.objects.create(case_id=case_id, staff=staff, tab=tab, seen_at=now)
        except IntegrityError:  # the same tab's two heartbeats at once
            pass
    fresh_after = now - dt.timedelta(seconds=FRESH_SECONDS)
    CasePresence.objects.filter(case_id=case_id, seen_at__lt=fresh_after).delete()
    others = []
    rows = (CasePresence.objects.filter(case_id=case_id, seen_at__gte=fresh_after).exclude(staff=staff, tab=tab)
            .select_related("staff").order_by("staff__email", "tab"))
    own_tabs = 0
    for row in rows:
        if row.staff_id == staff.pk:
            own_tabs += 1
        else:
            text = messages.PRESENCE_COLLEAGUE.format(who=row.staff.email)
            if text not in others:
                others.append(text)
    if own_tabs:
        others.append(messages.PRESENCE_OWN_TAB)
    return PresenceAnswer(others=others, newer=newer_than(case_id=case_id, marker=seen_through))


def leave(*, case_id: int, staff: Account, tab: str) -> None:
    CasePresence.objects.filter(case_id=case_id, staff=staff, tab=tab.strip()[:MAX_TAB_LENGTH]).delete()


def timeline_marker(*, case_id: int) -> str:
    """What a page showed of the conversation: the last message from the customer (by the contact form, by email)
    and the last reply, by id."""
    # One statement of three scalar subqueries, not three queries: the case page draws this on every view.
    last = Case.objects.filter(pk=case_id).values_list(
        _last_id(Contact.objects.filter(case_id=OuterRef("pk"))),
        _last_id(SupportAction.objects.filter(case_id=OuterRef("pk"), action="reply")),
        _last_id(InboundMessage.objects.filter(case_id=OuterRef("pk"), kind=InboundKind.REPLY))).first()
    last_contact, last_reply, last_email = last or (None, None, None)
    return f"{last_contact or 0}:{last_reply or 0}:{last_email or 0}"


def _last_id(rows: QuerySet[Any]) -> Subquery:
    return Subquery(rows.order_by("-id").values("id")[:1])


def _parse(marker: str) -> tuple[int, int, int] | None:
    parts = marker.split(":")
    if len(parts) == 2:  # a page drawn before emails were counted
        parts.append("0")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def newer_than(*, case_id: int, marker: str) -> list[str]:
    """The customer's messages and the replies sent since the page that carried ``marker`` was drawn, in words."""
    seen = _parse(marker)
    if seen is None:
        return []
    newer = [messages.NEWER_CONTACT.format(who=email, when=f"{at:%H:%M:%S UTC}") for email, at in
             Contact.objects.filter(case_id=case_id, id__gt=seen[0]).order_by("id").values_list("email", "created_at")]
    replies = (SupportAction.objects.filter(case_id=case_id, action="reply", id__gt=seen[1])
               .exclude(outcome=ActionOutcome.FAILED).select_related("staff").order_by("id"))
    newer += [messages.NEWER_REPLY.format(who=r.staff.email if r.staff else "automation",
                                          when=f"{r.created_at:%H:%M:%S UTC}") for r in replies]
    newer += [messages.NEWER_CONTACT.format(who=email, when=f"{at:%H:%M:%S UTC}") for email, at in
              InboundMessage.objects.filter(case_id=case_id, kind=InboundKind.REPLY, id__gt=seen[2])
              .order_by("id").values_list("from_email", "received_at")]
    return newer
