"""The case page reads a bounded number of queries: its history (timeline events, actions and their audit, emails
in and out, contacts, notes, promises) grows for years, and no part of the page may read a row per item."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backstop.accounts.models import AccountEvent
from backstop.notify.models import DeliveryStatus, Message
from backstop.support.models import (
    ActionOutcome,
    Case,
    CaseNote,
    Commitment,
    CommitmentKind,
    Contact,
    InboundAttachment,
    InboundKind,
    InboundMessage,
    SupportAction,
)
from backstop.support.tests.helpers import desk_client, staff_account, stalled_account


def _page_queries(client: object, case: Case) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        answer = client.get(f"/desk/cases/{case.pk}")  # type: ignore[attr-defined]
    assert answer.status_code == 200
    return len(queries.captured_queries), answer.content.decode()


def _add_history(case: Case, *, start: int, items: int) -> None:
    """``items`` more of everything the page lists, each by its own colleague where a row names one."""
    now = timezone.now()
    colleagues = {n: staff_account(email=f"colleague{n}@backstop.localhost") for n in range(start, start + items)}
    AccountEvent.objects.bulk_create([
        AccountEvent(account=case.account, kind="test", text=f"Event {n}.",
                     created_at=now - dt.timedelta(minutes=n)) for n in range(start * 5, (start + items) * 5)])
    for n, colleague in colleagues.items():
        at = now - dt.timedelta(minutes=n, seconds=30)
        message = Message.objects.create(
            key=f"history:{case.pk}:{n}", account=case.account, channel="email", kind="support_reply",
            to=case.email, subject=f"About your workspace ({n})", text=f"Reply {n}", status=DeliveryStatus.SENT,
            attempts=1, sent_at=at)
        SupportAction.objects.create(
            idempotency_key=f"history:{case.pk}:{n}", case=case, staff=colleague, action="reply", message=message,
            outcome=ActionOutcome.DONE, note=f"Reply {n} sent.", before={"case": {"version": n}},
            after={"case": {"version": n + 1}}, created_at=at, finished_at=at)
        Contact.objects.create(case=case, email=case.email, customer_key=case.customer_key, account=case.account,
                               text=f"Still stuck ({n})", our_reference=f"S-H{case.pk}{n:04d}", public_reply="",
                               private_reply="", created_at=at)
        mail = InboundMessage.objects.create(
            dedupe_key=f"history:{case.pk}:{n}", esp="test", kind=InboundKind.REPLY, from_email=case.email,
            subject=f"Re: your workspace ({n})", text=f"Answer {n}\n\n> quoted", visible_text=f"Answer {n}",
            raw=b"", case=case, received_at=at)
        InboundAttachment.objects.create(message=mail, filename=f"screen{n}.png", content_type="image/png", size=3,
                                         content=b"png")
        CaseNote.objects.create(case=case, staff=colleague, body=f"Note {n}", idempotency_key=f"history:{case.pk}:{n}",
                                created_at=at)
        Commitment.objects.create(case=case, kind=CommitmentKind.EMAIL_WHEN_DONE, text=f"Promise {n}",
                                  made_in=f"reply:{n}", made_at=at, kept_at=at, kept_by=colleague, kept_how="emailed")


@pytest.mark.django_db
def test_it_reads_the_case_page_in_the_same_number_of_queries_however_long_its_history() -> None:
    case = Case.objects.get(account=stalled_account("bob@example.com"))
    client = desk_client(staff_account())
    _add_history(case, start=0, items=1)
    short, _ = _page_queries(client, case)

    _add_history(case, start=1, items=30)
    long, page = _page_queries(client, case)

    assert "Reply 29 sent." in page and "screen1.png" in page and "Note 29" in page
    assert long == short, f"{long} queries with a long history, {short} with a short one"
