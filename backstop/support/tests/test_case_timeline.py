"""The case page shows the newest page of the timeline; "Show earlier" pages back through all of it, each entry once."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.utils import timezone

from backstop.accounts.models import AccountEvent
from backstop.support import messages
from backstop.support.desk import TIMELINE_PAGE
from backstop.support.models import ActionOutcome, Case, Contact, SupportAction
from backstop.support.tests.helpers import desk_client, staff_account, stalled_account

EARLIER_LINK = re.compile(r'<a id="timeline-earlier" href="([^"]+)"')


def _timeline_of(page: str) -> str:
    return page[page.index('id="timeline"'):]


@pytest.mark.django_db
def test_it_shows_the_newest_entries_and_every_earlier_one_a_page_at_a_time() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get(account=account)
    long_ago = timezone.now() - dt.timedelta(days=30)
    AccountEvent.objects.bulk_create([
        AccountEvent(account=account, kind="test", text=f"Old event {n:03d}.", created_at=long_ago - dt.timedelta(
            minutes=n)) for n in range(130)])
    # Three at one moment, where a page may end: none may fall between two pages.
    AccountEvent.objects.bulk_create([
        AccountEvent(account=account, kind="test", text=f"Same moment {n}.", created_at=long_ago - dt.timedelta(
            minutes=49, seconds=30)) for n in range(3)])
    SupportAction.objects.create(idempotency_key="old-reply", case=case, staff=staff_account(
        email="kim@backstop.localhost"), action="reply", outcome=ActionOutcome.DONE, note="The oldest reply.",
        created_at=long_ago - dt.timedelta(days=1), finished_at=long_ago - dt.timedelta(days=1))
    client = desk_client(staff_account())

    first = _timeline_of(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert messages.TIMELINE_EARLIER in first and "Old event 129." not in first and "The oldest reply." not in first
    assert first.count("<li>") <= TIMELINE_PAGE + 2  # the page, and the ties at its last moment
    seen = re.findall(r"(?:Old event \d{3}|Same moment \d)\.", first)
    pages = 1
    link = EARLIER_LINK.search(first)
    while link:
        answer = client.get(html.unescape(link.group(1)))
        assert answer.status_code == 200
        page = _timeline_of(answer.content.decode())
        seen += re.findall(r"(?:Old event \d{3}|Same moment \d)\.", page)
        pages += 1
        link = EARLIER_LINK.search(page)
        last = page
    assert pages >= 3
    assert sorted(seen) == sorted([f"Old event {n:03d}." for n in range(130)] + [f"Same moment {n}." for n in range(3)])
    assert "The oldest reply." in last and "kim@backstop.localhost" in last


@pytest.mark.django_db
def test_it_says_nothing_is_earlier_past_the_first_entry() -> None:
    case = Case.objects.get(account=stalled_account("bob@example.com"))
    page = desk_client(staff_account()).get(f"/desk/cases/{case.pk}/timeline?before=2001-01-01T00:00:00%2B00:00")
    assert page.status_code == 200 and messages.TIMELINE_NONE_EARLIER in page.content.decode()


@pytest.mark.django_db
def test_it_reads_a_moment_with_an_offset_in_utc_and_sends_one_with_no_utc_time_back_to_the_case() -> None:
    case = Case.objects.get(account=stalled_account("bob@example.com"))
    client = desk_client(staff_account())
    page = client.get(f"/desk/cases/{case.pk}/timeline", {"before": "2026-12-07T20:00:00+05:00"})
    assert page.status_code == 200
    assert messages.TIMELINE_EARLIER_TITLE.format(case=case.pk, moment="15:00:00 UTC, 7 Dec 2026") in html.unescape(
        page.content.decode())
    # Year 1 at +05:00 is year 0 in UTC, and 9999's last evening west of Greenwich is year 10000: no such moments.
    for edge in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "garbage"):
        answer = client.get(f"/desk/cases/{case.pk}/timeline", {"before": edge})
        assert (answer.status_code, answer["Location"]) == (302, f"/desk/cases/{case.pk}#timeline"), edge


def _walk(client: object, case: Case, pattern: str) -> tuple[list[str], int]:
    """Every entry matching ``pattern``, the case page's first and then each "Show earlier" page's, in page order."""
    page = _timeline_of(client.get(f"/desk/cases/{case.pk}").content.decode())  # type: ignore[attr-defined]
    seen, pages = re.findall(pattern, page), 1
    while link := EARLIER_LINK.search(page):
        answer = client.get(html.unescape(link.group(1)))  # type: ignore[attr-defined]
        assert answer.status_code == 200
        page = _timeline_of(answer.content.decode())
        seen += re.findall(pattern, page)
        pages += 1
    return seen, pages


@pytest.mark.django_db
def test_it_reaches_every_entry_once_when_more_than_a_page_share_one_moment() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get(account=account)
    moment = timezone.now() - dt.timedelta(days=3)
    AccountEvent.objects.bulk_create(
        [AccountEvent(account=account, kind="test", text=f"Tied {n:02d}.", created_at=moment) for n in range(60)]
        + [AccountEvent(account=account, kind="test", text=f"Older {n}.", created_at=moment - dt.timedelta(hours=n + 1))
           for n in range(5)])

    seen, pages = _walk(desk_client(staff_account()), case, r"(?:Tied \d\d|Older \d)\.")

    assert pages >= 2
    assert sorted(seen) == sorted([f"Tied {n:02d}." for n in range(60)] + [f"Older {n}." for n in range(5)])
    assert len(seen) == 65  # each once: none on two pages


@pytest.mark.django_db
def test_it_orders_the_first_page_and_the_earlier_ones_alike_when_rows_were_not_written_in_time_order() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get(account=account)
    newest = timezone.now() - dt.timedelta(days=3)
    # Written oldest id first but newest moment first: the lowest id is the newest contact.
    for n in range(70):
        Contact.objects.create(case=case, email=case.email, customer_key=case.customer_key, account=account,
                               text=f"Contact {n:02d}", our_reference=f"S-T{n:04d}", public_reply="",
                               private_reply="", created_at=newest - dt.timedelta(minutes=n))

    seen, _ = _walk(desk_client(staff_account()), case, r"Contact (\d\d)")

    # Newest first on every page and across them: 00 (the newest) to 69, each once.
    assert seen == [f"{n:02d}" for n in range(70)]


@pytest.mark.django_db
def test_it_sends_a_cursor_it_did_not_write_back_to_the_case() -> None:
    case = Case.objects.get(account=stalled_account("bob@example.com"))
    client = desk_client(staff_account())
    for key in ("garbage", "event", "event:", "event:-1", "event:1.5", "nothing:1", "event:٣", f"event:{2**63}"):
        answer = client.get(f"/desk/cases/{case.pk}/timeline", {"before": "2026-12-07T20:00:00+00:00", "key": key})
        assert (answer.status_code, answer["Location"]) == (302, f"/desk/cases/{case.pk}#timeline"), key
    answer = client.get(f"/desk/cases/{case.pk}/timeline", {"before": "2026-12-07T20:00:00+00:00", "key": "event:7"})
    assert answer.status_code == 200
