"""What the desk tells the incidents app: the customers who wrote in during an incident (its post-mortem's impact),
and which desk card goes with which incident record (both opened from the same cause: linked by whichever is second).
"""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from backstop.incidents.hooks import CustomerContact, DeskCard
from backstop.incidents.models import Incident as IncidentRecord
from backstop.support import messages
from backstop.support.models import Contact, Incident


def contacts_between(start: dt.datetime, end: dt.datetime) -> list[CustomerContact]:
    rows = Contact.objects.filter(created_at__gte=start, created_at__lte=end).order_by("created_at")
    return [CustomerContact(email=row.email, at=row.created_at, text=row.text) for row in rows[:200]]


def link_incident_records(*, cause: str) -> int:
    """The live desk card of ``cause`` and the live incident record of the same cause, linked (a no-op when one of
    them is not open yet, or they are linked already); the number of links made."""
    if not cause:
        return 0
    made = 0
    records = list(IncidentRecord.objects.live().filter(cause=cause))
    for card in Incident.objects.active().filter(cause=cause):
        linked = set(card.records.values_list("pk", flat=True))
        new = [record for record in records if record.pk not in linked]
        card.records.add(*new)
        made += len(new)
    return made


def on_record_opened(incident_id: int, cause: str) -> None:
    link_incident_records(cause=cause)


def desk_cards(incident_id: int) -> list[DeskCard]:
    return [DeskCard(label=messages.DESK_CARD_LINK.format(pk=card.pk),
                     url=reverse("desk-incident", args=[card.pk]))
            for card in Incident.objects.filter(records__pk=incident_id).order_by("pk")]
