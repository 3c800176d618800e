"""The weekly summary to staff: last ISO week's cases, first answers against their targets, what automation fixed
and the incidents; once per staff member per week."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings

from backstop.notify.models import Message
from backstop.support.models import Case, CaseState, Incident, IncidentState, Resolution, SupportAction
from backstop.support.replies import send_reply
from backstop.support.tests.helpers import staff_account, stalled_account
from backstop.support.weekly import last_week, send_weekly_summary

NOW = dt.datetime(2026, 12, 9, 10, 0, tzinfo=dt.UTC)  # a Wednesday: last week is Mon 30 Nov to Sun 6 Dec


def test_it_takes_the_iso_week_that_ended() -> None:
    assert last_week(NOW) == (dt.datetime(2026, 11, 30, tzinfo=dt.UTC), dt.datetime(2026, 12, 7, tzinfo=dt.UTC))


@pytest.mark.django_db
@override_settings(SUPPORT_QUIET_HOURS=None)
def test_it_emails_last_weeks_figures_to_each_staff_member_once() -> None:
    sam, kim = staff_account(), staff_account(email="kim@backstop.localhost")
    monday = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
    fast = Case.objects.get(account=stalled_account("bob@example.com"))  # locked out: target 2 hours
    slow = Case.objects.get(account=stalled_account("cy@example.com"))
    fixed = Case.objects.get(account=stalled_account("di@example.com"))
    Case.objects.filter(pk__in=[fast.pk, slow.pk, fixed.pk]).update(opened_at=monday)
    Case.objects.filter(pk=fixed.pk).update(state=CaseState.RESOLVED, resolution=Resolution.AUTOMATION,
                                            resolved_at=monday + dt.timedelta(minutes=20))
    for case, after in ((fast, dt.timedelta(minutes=30)), (slow, dt.timedelta(hours=5))):
        send_reply(case_id=case.pk, staff=sam, key=f"k{case.pk}", subject="Hi", body="On it.")
        SupportAction.objects.filter(case=case, action="reply").update(created_at=monday + after)
    Incident.objects.create(cause="provider:workspace", provider="workspace", state=IncidentState.RESOLVED,
                            started_at=monday + dt.timedelta(days=2), customers_affected=14)

    assert send_weekly_summary(now=NOW) == 2
    assert send_weekly_summary(now=NOW) == 0  # the next hourly pass
    emails = Message.objects.filter(kind="support_weekly").order_by("to")
    assert [m.to for m in emails] == ["agent@backstop.localhost", "kim@backstop.localhost"]
    text = emails[0].text
    assert emails[0].subject == "Support, week 49 of 2026 (30 Nov to 6 Dec): 3 cases, 1 fixed by automation"
    assert "Cases: 3 opened, 1 resolved, 1 of them fixed by automation" in text
    assert "2 of the cases opened were answered; median time 2.8 hours; 1 within the target" in text
    assert "- workspace provider, from Wed 2 Dec 09:00: 14 customers touched (resolved)" in text
    assert emails[0].html.count("<li>") >= 4
    assert kim.email in [m.to for m in emails]
