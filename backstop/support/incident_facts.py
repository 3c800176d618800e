"""What the desk tells the incidents app: the customers who wrote in during an incident (its post-mortem's impact)."""

from __future__ import annotations

import datetime as dt

from backstop.incidents.hooks import CustomerContact
from backstop.support.models import Contact


def contacts_between(start: dt.datetime, end: dt.datetime) -> list[CustomerContact]:
    rows = Contact.objects.filter(created_at__gte=start, created_at__lte=end).order_by("created_at")
    return [CustomerContact(email=row.email, at=row.created_at, text=row.text) for row in rows[:200]]
