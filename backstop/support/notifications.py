"""Telling staff without drowning them: money at risk at once, one line per incident, everything else in a digest.

Nothing is sent during quiet hours (BACKSTOP_SUPPORT_QUIET_HOURS); what was held goes out when they end. By then
automation has already done what it can and the customer has had a truthful answer.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef
from django.urls import reverse

from backstop.accounts.models import Account, AccountState
from backstop.attention.models import Harm
from backstop.notify import services as notify
from backstop.support import messages
from backstop.support.desk import incident_card_text
from backstop.support.models import Case, CaseState, Incident, StaffNotice, Urgency

BATCH = 500


def in_quiet_hours(now: dt.datetime) -> bool:
    hours = settings.SUPPORT_QUIET_HOURS
    if hours is None:
        return False
    start, end = hours
    moment = now.astimezone(dt.UTC).time()
    return start <= moment < end if start <= end else (moment >= start or moment < end)


def _case_url(case_id: int) -> str:
    return f"{settings.BASE_URL}{reverse('desk-case', args=[case_id])}"


def _incident_url(incident_id: int) -> str:
    return f"{settings.BASE_URL}{reverse('desk-incident', args=[incident_id])}"


def _add(*, key: str, urgency: str, text: str, case: Case | None = None, incident: Incident | None = None) -> None:
    try:
        with transaction.atomic():
            StaffNotice.objects.create(key=key, urgency=urgency, text=text[:500], case=case, incident=incident)
    except IntegrityError:  # queued already (by this pass in another process)
        pass


def queue_staff_notices() -> None:
    noticed_case = StaffNotice.objects.filter(case=OuterRef("pk"))
    for case in Case.objects.filter(state=CaseState.OPEN, harm=Harm.MONEY).exclude(Exists(noticed_case))[:BATCH]:
        _add(key=f"case:{case.pk}", urgency=Urgency.IMMEDIATE, case=case,
             text=messages.STAFF_URGENT_TEXT.format(email=case.email, summary=case.summary, url=_case_url(case.pk)))
    noticed_incident = StaffNotice.objects.filter(incident=OuterRef("pk"))
    for incident in Incident.objects.active().exclude(Exists(noticed_incident)):
        # Automation is retrying and nobody needs to act: a digest line, however many customers it touches.
        _add(key=f"incident:{incident.pk}", urgency=Urgency.DIGEST, incident=incident,
             text=messages.STAFF_INCIDENT_TEXT.format(card=incident_card_text(incident),
                                                      url=_incident_url(incident.pk)))
    for case in Case.objects.queue().filter(harm__lt=Harm.MONEY).exclude(Exists(noticed_case))[:BATCH]:
        _add(key=f"case:{case.pk}", urgency=Urgency.DIGEST, case=case,
             text=messages.STAFF_CASE_TEXT.format(harm=messages.HARM_LABELS[case.harm], email=case.email,
                                                  summary=case.summary, url=_case_url(case.pk)))


def _recipients() -> list[Account]:
    return list(Account.objects.filter(is_staff=True).exclude(state=AccountState.DISABLED).order_by("pk"))


def _still_relevant(notice: StaffNotice) -> bool:
    """A digest line about a case that resolved itself or joined an incident meanwhile would only be noise."""
    if notice.case_id is not None:
        return Case.objects.filter(pk=notice.case_id, state=CaseState.OPEN, incident__isnull=True).exists()
    return True


def _line(notice: StaffNotice) -> str:
    if notice.incident is not None:  # the incident as it stands now, not as it was when queued
        return messages.STAFF_INCIDENT_TEXT.format(card=incident_card_text(notice.incident),
                                                   url=_incident_url(notice.incident.pk))
    return notice.text


def _send(*, kind: str, key: str, subject: str, text: str) -> int:
    sent = 0
    for staff in _recipients():
        message = notify.create_email(account=None, kind=kind, key=f"{key}:{staff.pk}"[:200], to=staff.email,
                                      context={"subject": subject, "text": text})
        notify.send_soon(message)
        sent += 1
    return sent


def send_due_notices(*, now: dt.datetime) -> int:
    """Send what is due; returns the number of emails queued. Each notice is claimed once (conditional UPDATE)."""
    if in_quiet_hours(now):
        return 0
    sent = 0
    for notice in StaffNotice.objects.filter(sent_at__isnull=True, urgency=Urgency.IMMEDIATE).select_related(
            "case", "incident")[:BATCH]:
        with transaction.atomic():
            if not StaffNotice.objects.filter(pk=notice.pk, sent_at__isnull=True).update(
                    sent_at=now, batch_key=f"immediate:{notice.pk}"):
                continue
            email = notice.case.email if notice.case is not None else ""
            subject = messages.STAFF_URGENT_SUBJECT.format(email=email) if email else _line(notice)[:200]
            sent += _send(kind="support_staff_alert", key=f"staff-alert:{notice.pk}", subject=subject,
                          text=f"{messages.STAFF_URGENT_INTRO}\n\n{_line(notice)}")
    return sent + _send_digest(now)


def _send_digest(now: dt.datetime) -> int:
    last = StaffNotice.objects.filter(urgency=Urgency.DIGEST, sent_at__isnull=False).aggregate(
        last=Max("sent_at"))["last"]
    if last is not None and now - last < dt.timedelta(hours=settings.SUPPORT_DIGEST_HOURS):
        return 0
    pending = list(StaffNotice.objects.filter(sent_at__isnull=True, urgency=Urgency.DIGEST).select_related(
        "case", "incident").order_by("id")[:BATCH])
    if not pending:
        return 0
    batch = f"digest:{now:%Y%m%dT%H%M%S}:{uuid.uuid4().hex[:12]}"  # one per sender, even in the same second
    with transaction.atomic():
        claimed = StaffNotice.objects.filter(pk__in=[n.pk for n in pending], sent_at__isnull=True).update(
            sent_at=now, batch_key=batch)
        if not claimed:
            return 0
        # Another process may have claimed some of them a moment earlier: list only the ones this batch holds.
        ours = set(StaffNotice.objects.filter(batch_key=batch).values_list("pk", flat=True))
        lines = [_line(n) for n in pending if n.pk in ours and _still_relevant(n)]
        if not lines:
            return 0
        text = "\n\n".join([messages.STAFF_DIGEST_INTRO, *(f"- {line}" for line in lines)])
        subject = messages.STAFF_DIGEST_SUBJECT.format(count=len(lines), s=messages.plural(len(lines)))
        return _send(kind="support_staff_digest", key=f"staff-{batch}", subject=subject, text=text)
