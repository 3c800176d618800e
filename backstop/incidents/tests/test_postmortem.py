"""The post-mortem draft: every known fact filled in, questions instead of placeholders, action items against the
team's capacity, the responders asked (the newest on-call by name), Markdown export, the 30-day reminder."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from backstop.incidents import followup, lifecycle
from backstop.incidents.detection import watch_breakers
from backstop.incidents.models import Incident, IncidentState, PostMortem, Priority
from backstop.incidents.postmortem import capacity_check, draft_postmortem
from backstop.incidents.tests.helpers import (
    break_provider,
    finish_waiting,
    make_paying,
    recover_provider,
    staff,
    waiting_customer,
)
from backstop.notify.models import Message
from backstop.support.models import Contact

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def status_file(settings: Any, tmp_path: Path) -> Path:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "status.json"
    settings.INCIDENT_RESOLVE_AFTER_SECONDS = 0
    return Path(settings.INCIDENTS_STATUS_FILE)


def _resolved_incident() -> tuple[Incident, list[Any]]:
    break_provider("workspace", error="workspace API answered 503")
    customers = [waiting_customer() for _ in range(3)]
    make_paying(customers[0])
    watch_breakers()
    incident = Incident.objects.get()
    lifecycle.post_update(incident_id=incident.pk, body="Looking into it.", state=IncidentState.INVESTIGATING,
                          staff=staff("ada@backstop.localhost"), idempotency_key="u1")
    Contact.objects.create(email=customers[1].email, customer_key=customers[1].email, text="Where is my workspace?",
                           our_reference="C-1", public_reply="", private_reply="")
    recover_provider("workspace")
    for customer in customers:
        finish_waiting(customer)
    watch_breakers()
    watch_breakers()
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
    return incident, customers


def test_it_fills_in_every_known_fact_and_asks_the_rest() -> None:
    incident, customers = _resolved_incident()
    text = draft_postmortem(incident)
    assert "[Insert" not in text and "[" not in text.replace("| ---", "")
    for section in ("Summary", "Impact", "Timeline", "Root cause and trigger", "Detection", "Resolution",
                    "What went well", "What went badly", "Where we got lucky", "Action items", "Responders"):
        assert f"## {section}" in text
    assert f"{incident.started_at:%Y-%m-%d %H:%M:%S} UTC" in text
    assert f"resolved at {incident.resolved_at:%Y-%m-%d %H:%M:%S} UTC" in text
    assert "3 customers were affected" in text and "3 customers could not finish: creating their workspace" in text
    assert "Money at risk: 1 paying customers, 249.00 USD in paid orders" in text
    assert f'{customers[1].email}: "Where is my workspace?"' in text
    assert 'last error was "workspace API answered 503"' in text
    assert "ada@backstop.localhost" in text
    assert text.count("**Question:**") >= 6


def test_it_names_the_newest_on_call_in_the_responders_section() -> None:
    incident, _ = _resolved_incident()  # ada@ responded; she has been on the team a while
    newest = staff("second-week@backstop.localhost")
    newest.name = "Sam Newcomer"
    newest.save(update_fields=["name"])
    text = draft_postmortem(incident)
    assert re.search(r"Sam Newcomer joined on \d{4}-\d\d-\d\d, the newest of us on call\. \*\*Question:\*\* Sam "
                     r"Newcomer, how was this for you\?", text)


def test_it_warns_when_the_open_p0_p1_items_exceed_the_team_capacity() -> None:
    incident, _ = _resolved_incident()
    owner = staff("owner@backstop.localhost")
    in_two_weeks = (timezone.now() + dt.timedelta(days=14)).date()
    followup.set_team_capacity(people=2, hours_per_week=5)  # 2 x 5 h x 2 weeks = 20 h
    for title, priority, hours in (("Alert on breaker opening", Priority.P0, 8), ("Provider fallback", Priority.P1, 10),
                                   ("Runbook", Priority.P2, 40)):
        followup.add_action_item(incident_id=incident.pk, title=title, owner_id=owner.pk, priority=priority,
                                 due=in_two_weeks, estimate_hours=hours)
    check = capacity_check()
    assert (check.open_hours, check.available_hours, check.exceeded) == (18, 20, False)  # P2 does not count
    item = followup.add_action_item(incident_id=incident.pk, title="Second provider", owner_id=owner.pk,
                                    priority=Priority.P1, due=in_two_weeks, estimate_hours=3)
    assert capacity_check().exceeded
    text = draft_postmortem(incident)
    assert "**Warning:** the open P0/P1 items need 21 h; the team has 20 h" in text
    assert "which do we drop, or defer to P2?" in text
    assert f"| P1 | Second provider | {owner.name} | {in_two_weeks:%Y-%m-%d} | 3 h | open |" in text
    desk = Client()
    desk.force_login(owner, backend="django.contrib.auth.backends.ModelBackend")
    page = desk.get("/desk/incidents/").content.decode()
    assert 'id="capacity-warning"' in page and "Second provider" in page and "Runbook" in page
    assert desk.post(f"/desk/incidents/action-items/{item.pk}/done").status_code == 302
    assert not capacity_check().exceeded
    page = desk.get("/desk/incidents/").content.decode()
    assert 'id="capacity-warning"' not in page and "Second provider" not in page  # done: off the list


def test_it_asks_for_the_capacity_when_none_was_set() -> None:
    incident, _ = _resolved_incident()
    assert not capacity_check().capacity_set
    assert "how many people, and how many hours a week each" in draft_postmortem(incident)


def test_it_reminds_the_owners_once_thirty_days_after_the_incident() -> None:
    incident, _ = _resolved_incident()
    owner = staff("owner@backstop.localhost")
    postmortem = followup.start_postmortem(incident_id=incident.pk)
    assert incident.resolved_at is not None
    assert postmortem.review_due_at == incident.resolved_at + dt.timedelta(days=30)
    followup.add_action_item(incident_id=incident.pk, title="Alert sooner", owner_id=owner.pk, priority=Priority.P1,
                             due=(timezone.now() + dt.timedelta(days=7)).date(), estimate_hours=4)
    assert followup.send_review_reminders(now=incident.resolved_at + dt.timedelta(days=29)) == 0
    later = incident.resolved_at + dt.timedelta(days=30, minutes=1)
    assert followup.send_review_reminders(now=later) == 1
    assert followup.send_review_reminders(now=later) == 0
    reminders = list(Message.objects.filter(kind="incident_review"))
    assert [m.to for m in reminders] == [owner.email]
    assert "P1 Alert sooner" in reminders[0].text and "30 days" in reminders[0].subject
    assert PostMortem.objects.get().review_reminded_at == later


def test_it_is_edited_on_the_desk_and_exported_as_markdown() -> None:
    incident, _ = _resolved_incident()
    desk = Client()
    desk.force_login(staff("editor@backstop.localhost"), backend="django.contrib.auth.backends.ModelBackend")
    page = desk.get(f"/desk/incidents/record/{incident.pk}/postmortem")
    assert page.status_code == 200 and b'data-draft="postmortem:' in page.content
    edited = PostMortem.objects.get().markdown + "\n## Notes\n\nThe provider confirmed a bad config push.\n"
    assert desk.post(f"/desk/incidents/record/{incident.pk}/postmortem", {"markdown": edited}).status_code == 302
    exported = desk.get(f"/desk/incidents/record/{incident.pk}/postmortem.md")
    assert exported["Content-Type"].startswith("text/markdown")
    assert exported.content.decode().endswith("The provider confirmed a bad config push.\n")
