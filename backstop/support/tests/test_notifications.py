"""Staff hear about money at risk at once, about everything else in a digest, once per incident, never at night."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, Harm
from backstop.notify.models import Message
from backstop.support import automation, notifications
from backstop.support.models import StaffNotice, Urgency
from backstop.support.tests.helpers import open_breaker, staff_account, stalled_account

pytestmark = pytest.mark.django_db
QUIET = (dt.time(22, 0), dt.time(7, 0))


def _unmatched_payment(payment_id: str = "pi_1") -> None:
    attention.raise_once(
        kind=AttentionKind.PAYMENT_UNMATCHED, harm=Harm.MONEY, cause="", subject=f"payment:{payment_id}",
        summary=f"Payment {payment_id} of $249 from dana@example.com matches no checkout.",
        detail={"payment_id": payment_id, "email": "dana@example.com", "amount": "$249"})


def _sent(kind: str) -> list[Message]:
    return list(Message.objects.filter(kind=kind).order_by("id"))


def _at(hour: int, minute: int = 0, days: int = 0) -> dt.datetime:
    today = timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=days)
    return dt.datetime.combine(today, dt.time(hour, minute), tzinfo=dt.UTC)


def test_it_tells_every_staff_member_at_once_when_money_is_at_risk_and_only_once() -> None:
    staff_account(email="a@backstop.localhost")
    staff_account(email="b@backstop.localhost")
    _unmatched_payment()

    notifications.queue_staff_notices()
    assert notifications.send_due_notices(now=_at(12)) == 2
    notifications.queue_staff_notices()
    assert notifications.send_due_notices(now=_at(12, 5)) == 0

    alerts = _sent("support_staff_alert")
    assert sorted(m.to for m in alerts) == ["a@backstop.localhost", "b@backstop.localhost"]
    assert alerts[0].subject == "Money at risk: dana@example.com"
    assert "matches no checkout" in alerts[0].text
    assert not _sent("support_staff_digest")


def test_it_puts_everything_else_in_one_digest_at_most_as_often_as_configured() -> None:
    staff_account()
    stalled_account("bob@example.com")
    stalled_account("cat@example.com")
    notifications.queue_staff_notices()

    assert notifications.send_due_notices(now=_at(9)) == 1
    digest = _sent("support_staff_digest")[0]
    assert digest.subject == "Support digest: 2 items"
    assert "Locked out: bob@example.com" in digest.text and "Locked out: cat@example.com" in digest.text
    assert not _sent("support_staff_alert")

    stalled_account("dan@example.com")
    notifications.queue_staff_notices()
    assert notifications.send_due_notices(now=_at(12)) == 0  # the next digest is not due for 24 hours
    assert notifications.send_due_notices(now=_at(9, 1, days=1)) == 1
    assert "dan@example.com" in _sent("support_staff_digest")[1].text


def test_it_sends_one_line_for_an_incident_not_one_per_customer() -> None:
    staff_account()
    for i in range(10):
        stalled_account(f"s{i}@example.com")
    open_breaker("workspace")
    automation.run_support_cycle()

    assert list(StaffNotice.objects.values_list("key", "urgency")) == [
        (f"incident:{StaffNotice.objects.get().incident_id}", Urgency.DIGEST)]
    digest = _sent("support_staff_digest")
    assert len(digest) == 1 and digest[0].subject == "Support digest: 1 item"
    assert "10 customers waiting, automation retrying, no action needed" in digest[0].text


@override_settings(SUPPORT_QUIET_HOURS=QUIET)
def test_it_holds_every_notification_during_quiet_hours_and_sends_them_after() -> None:
    staff_account()
    _unmatched_payment()
    stalled_account("bob@example.com")
    notifications.queue_staff_notices()

    assert notifications.send_due_notices(now=_at(23, 30)) == 0
    assert notifications.send_due_notices(now=_at(6, 59, days=1)) == 0
    assert not Message.objects.filter(kind__startswith="support_staff").exists()

    assert notifications.send_due_notices(now=_at(7, 0, days=1)) == 2
    assert len(_sent("support_staff_alert")) == 1 and len(_sent("support_staff_digest")) == 1
