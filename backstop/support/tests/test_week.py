"""The picture of the week on the desk home: opened and resolved per day, median time, fixed by automation."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.utils import timezone

from backstop.support.desk import week_picture
from backstop.support.models import Case, CaseState, Resolution
from backstop.support.tests.helpers import desk_client, staff_account

pytestmark = pytest.mark.django_db


def _case(n: int, *, opened_days_ago: int, hours_to_resolve: float | None, by: str = Resolution.AUTOMATION) -> Case:
    opened = timezone.now() - dt.timedelta(days=opened_days_ago)
    resolved = opened + dt.timedelta(hours=hours_to_resolve) if hours_to_resolve is not None else None
    return Case.objects.create(
        customer_key=f"c{n}@example.com", email=f"c{n}@example.com", opened_at=opened, resolved_at=resolved,
        state=CaseState.RESOLVED if resolved else CaseState.OPEN, resolution=by if resolved else "",
        resolution_seconds=round(hours_to_resolve * 3600) if hours_to_resolve is not None else None)


def test_it_counts_the_week_and_finds_the_median_time_to_resolution() -> None:
    now = timezone.now()
    _case(1, opened_days_ago=3, hours_to_resolve=1)
    _case(2, opened_days_ago=3, hours_to_resolve=3)
    _case(3, opened_days_ago=2, hours_to_resolve=5, by=Resolution.STAFF)
    _case(4, opened_days_ago=0, hours_to_resolve=None)
    _case(5, opened_days_ago=30, hours_to_resolve=None)  # outside the week

    week = week_picture(now=now)

    assert week.opened == 4 and week.resolved == 3
    assert week.median_seconds == 3 * 3600
    assert week.automated == 2
    assert [d.opened for d in week.days][-1] == 1 and sum(d.opened for d in week.days) == 4
    assert week.summary == ("4 opened, 3 resolved, median time to resolution 3 hours, "
                            "2 fixed by automation without a person.")
    assert week.svg.startswith("<svg") and week.svg.count("<rect") == 2 + 14


def test_it_draws_the_week_on_the_desk_home() -> None:
    _case(1, opened_days_ago=1, hours_to_resolve=2)
    page = html.unescape(desk_client(staff_account()).get("/desk").content.decode())
    assert "1 opened, 1 resolved, median time to resolution 2 hours, 1 fixed by automation" in page
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page
