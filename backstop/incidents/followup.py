"""After the incident: the post-mortem (drafted, edited, exported), its action items, the team's capacity, and the
review reminder 30 days later."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.incidents import messages
from backstop.incidents.models import ActionItem, Incident, PostMortem, Priority, TeamCapacity
from backstop.incidents.postmortem import REVIEW_AFTER, draft_postmortem
from backstop.lib.errors import InvalidInput
from backstop.notify import services as notify


def start_postmortem(*, incident_id: int) -> PostMortem:
    """The incident's post-mortem, drafted from what the system knows the first time it is asked for."""
    incident = Incident.objects.get(pk=incident_id)
    postmortem, _ = PostMortem.objects.get_or_create(incident=incident, defaults={
        "markdown": draft_postmortem(incident),
        "review_due_at": (incident.resolved_at or timezone.now()) + REVIEW_AFTER})
    return postmortem


def redraft_postmortem(*, incident_id: int, staff: Any) -> PostMortem:
    """Draft it again from the facts as they are now (action items added, the incident resolved)."""
    postmortem = start_postmortem(incident_id=incident_id)
    postmortem.markdown = draft_postmortem(postmortem.incident)
    postmortem.edited_by, postmortem.updated_at = staff, timezone.now()
    postmortem.save(update_fields=["markdown", "edited_by", "updated_at"])
    return postmortem


def save_postmortem(*, incident_id: int, markdown: str, staff: Any) -> PostMortem:
    postmortem = start_postmortem(incident_id=incident_id)
    postmortem.markdown = markdown.replace("\r\n", "\n")
    postmortem.edited_by, postmortem.updated_at = staff, timezone.now()
    postmortem.save(update_fields=["markdown", "edited_by", "updated_at"])
    return postmortem


def add_action_item(*, incident_id: int, title: str, owner_id: int, priority: str, due: dt.date,
                    estimate_hours: int) -> ActionItem:
    if priority not in Priority.values:
        raise InvalidInput({"priority": messages.PRIORITY_UNKNOWN})
    owner = Account.objects.filter(pk=owner_id, is_staff=True).first()
    if owner is None:
        raise InvalidInput({"owner": messages.OWNER_NOT_STAFF})
    return ActionItem.objects.create(incident_id=incident_id, title=title.strip()[:300], owner=owner,
                                     priority=priority, due=due, estimate_hours=estimate_hours)


def finish_action_item(*, item_id: int) -> bool:
    return bool(ActionItem.objects.filter(pk=item_id, done_at__isnull=True).update(done_at=timezone.now()))


def set_team_capacity(*, people: int, hours_per_week: int) -> TeamCapacity:
    capacity, _ = TeamCapacity.objects.update_or_create(pk=1, defaults={
        "people": people, "hours_per_week": hours_per_week, "updated_at": timezone.now()})
    return capacity


def send_review_reminders(now: dt.datetime | None = None) -> int:
    """Each post-mortem due for its 30-day review: one email to each owner of its open items (or, with none open,
    to whoever last edited it), once. Returns the post-mortems reminded."""
    now = now or timezone.now()
    reminded = 0
    for postmortem in PostMortem.objects.filter(review_due_at__lte=now, review_reminded_at__isnull=True):
        with transaction.atomic():
            if not PostMortem.objects.filter(pk=postmortem.pk, review_reminded_at__isnull=True).update(
                    review_reminded_at=now):
                continue  # another process reminded it
            items = list(ActionItem.objects.filter(incident=postmortem.incident, done_at__isnull=True))
            people = {item.owner for item in items} or ({postmortem.edited_by} if postmortem.edited_by else set())
            for person in people:
                mine = [item for item in items if item.owner_id == person.pk]
                text = messages.REVIEW_REMINDER.format(
                    name=person.name or person.email, title=postmortem.incident.title,
                    items="\n".join(f"- {i.priority} {i.title} (due {i.due:%Y-%m-%d})" for i in mine) or "- none",
                    open_count=len(items))
                message = notify.create_email(
                    account=person, kind="incident_review", key=f"incident-review:{postmortem.pk}:{person.pk}",
                    to=person.email, context={"subject": messages.REVIEW_REMINDER_SUBJECT.format(
                        title=postmortem.incident.title), "text": text})
                notify.send_soon(message)
            reminded += 1
    return reminded
