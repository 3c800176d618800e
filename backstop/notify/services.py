"""Queueing and delivering messages. Queueing is a local write; delivery happens in a workflow."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Replace
from django.template import Context, Engine
from django.template.loader import render_to_string
from django.utils import timezone

from backstop.lib.errors import ProviderError, ProviderRefused, ProviderThrottled
from backstop.notify.models import Channel, DeliveryStatus, Message
from backstop.notify.providers import email_provider, sms_provider
from backstop.runtime.guarded import SWEEP_LIMIT
from backstop.runtime.retrying import AttemptResult, call_through_breaker

SECRET_MASK = "••••••"
STRANDED_MESSAGES_MAX_AGE = dt.timedelta(days=1)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render_text(name: str, context: dict[str, Any]) -> str:
    """A plain-text template (a subject, a text body, an SMS), never HTML-escaped: "Seán O'Brien" and "Smith & Sons"
    stay as typed. Done here, for every .txt template, so a new template cannot forget it; HTML parts go through
    render_to_string and are escaped once."""
    return Engine.get_default().get_template(name).render(Context(context, autoescape=False))


def render_email(kind: str, context: dict[str, Any]) -> Rendered:
    """An email kind is the template triple notify/email/<kind>/{subject.txt,body.txt,body.html}."""
    base = f"notify/email/{kind}"
    return Rendered(
        subject=" ".join(render_text(f"{base}/subject.txt", context).split()),
        text=render_text(f"{base}/body.txt", context).strip() + "\n",
        html=render_to_string(f"{base}/body.html", context),
    )


def render_sms(kind: str, context: dict[str, Any]) -> str:
    return " ".join(render_text(f"notify/sms/{kind}.txt", context).split())


def create_email(
    *, account: Any, kind: str, key: str, to: str, context: dict[str, Any], secret: str = "", reply_to: str = "",
    message_id: str = "",
) -> Message:
    """Record an email to send; the same ``key`` never makes a second message. ``secret`` is masked once sent.
    ``reply_to`` and ``message_id`` (both empty by default) are its Reply-To and Message-ID headers."""
    rendered = render_email(kind, context)
    message, _ = Message.objects.get_or_create(
        key=key,
        defaults={"account": account, "channel": Channel.EMAIL, "kind": kind, "to": to, "secret": secret,
                  "subject": rendered.subject, "text": rendered.text, "html": rendered.html,
                  "reply_to": reply_to, "header_message_id": message_id},
    )
    return message


def reword_unsent_email(*, message: Message, kind: str, context: dict[str, Any]) -> bool:
    """Render an email as another ``kind`` while no delivery of it has started (its words were decided late); False,
    and nothing changed, once one has: what is being or was sent stays as it was."""
    from backstop.notify.workflows import delivery
    from backstop.runtime import dispatch

    if message.kind == kind or dispatch.workflow_status(delivery.workflow_id(message.key)) is not None:
        return False
    rendered = render_email(kind, context)
    changed = Message.objects.filter(pk=message.pk, status=DeliveryStatus.QUEUED, attempts=0).update(
        kind=kind, subject=rendered.subject, text=rendered.text, html=rendered.html)
    if changed:
        message.kind, message.subject, message.text, message.html = kind, rendered.subject, rendered.text, rendered.html
    return bool(changed)


def reword_late_email(*, message: Message, template: str, context: dict[str, Any]) -> bool:
    """Render an unsent email from another ``template`` that says sorry for its lateness, and mark it as carrying
    the apology; False, and nothing changed, once the provider may already hold its first words under its key (an
    attempt that was not clearly refused: ``maybe_sent``), or it was sent. The key and the kind stay: one message,
    delivered once, in the words decided last (each late attempt words it again: the outage's window may have moved)."""
    rendered = render_email(template, context)
    changed = Message.objects.filter(
        pk=message.pk, status__in=(DeliveryStatus.QUEUED, DeliveryStatus.RETRYING), maybe_sent=False,
    ).update(subject=rendered.subject, text=rendered.text, html=rendered.html, carries_apology=True)
    if changed:
        message.subject, message.text, message.html = rendered.subject, rendered.text, rendered.html
        message.carries_apology = True
    return bool(changed)


def create_sms(
    *, account: Any, kind: str, key: str, to: str, context: dict[str, Any], secret: str = ""
) -> Message:
    message, _ = Message.objects.get_or_create(
        key=key,
        defaults={"account": account, "channel": Channel.SMS, "kind": kind, "to": to, "secret": secret,
                  "text": render_sms(kind, context)},
    )
    return message


def _forget_secret(secret: str) -> dict[str, Any]:
    """UPDATE values that mask the message's one-time secret wherever it appears, and drop the secret itself."""
    if not secret:
        return {}
    # Several secrets (a code and a sign-in link's token) are kept separated by spaces; each is masked.
    masked: dict[str, Any] = {}
    for field in ("subject", "text", "html"):
        expression: Any = F(field)
        for part in secret.split():
            expression = Replace(expression, Value(part), Value(SECRET_MASK))
        masked[field] = expression
    return masked | {"secret": ""}


def send_soon(message: Message) -> None:
    """After the surrounding transaction commits, hand the message to a durable delivery workflow.

    A hand-over that fails is logged, not raised into whatever committed the message (the delivery's safety-net sweep
    takes it up).
    """
    from backstop.notify.workflows import delivery

    delivery.start_after_commit(message.pk, message.key)


def enqueue_delivery(message_id: int, key: str) -> None:
    from backstop.notify.workflows import delivery

    delivery.start(message_id, key)


def hand_on_stranded_messages(*, grace_seconds: float) -> int:
    """The delivery's safety net (registered with the runtime's sweeps), called by hand."""
    from backstop.notify.workflows import delivery

    return delivery.sweep(grace_seconds)


def stranded_messages(grace_seconds: float) -> list[tuple[int, str]]:
    """Messages recorded but perhaps never handed to a delivery workflow: (id, key), oldest first.

    That happens when the process stopped between the commit and the hand-over, or the hand-over failed. A message
    older than a day is left as it is: news that late (a notice of a signup attempt, a receipt) would confuse more than
    help, and the support desk shows it unsent.
    """
    now = timezone.now()
    return list(Message.objects.never_handed_on(
        since=now - STRANDED_MESSAGES_MAX_AGE, before=now - dt.timedelta(seconds=grace_seconds),
        codes_since=now - dt.timedelta(seconds=settings.VERIFICATION_CODE_TTL_SECONDS),
    ).values_list("pk", "key")[:SWEEP_LIMIT])


def deliver_message(*, message_id: int, attempt: int) -> AttemptResult:
    """One delivery attempt. Idempotent: a message already sent is not sent again."""
    return deliver(message=Message.objects.get(pk=message_id), attempt=attempt)


def deliver(*, message: Message, attempt: int, known_healthy: bool = False) -> AttemptResult:
    """One delivery attempt of a message just read from the database (see ``deliver_message``; ``known_healthy`` as in
    ``call_through_breaker``)."""
    if message.status == DeliveryStatus.SENT:
        return {"status": "done", "retry_in": 0.0, "error": ""}

    def send() -> None:
        # A paced call may have slept for its slot: another attempt at this message (a second workflow) may have sent
        # it meanwhile, and a resend would spend a slot of the provider's rate for a replay of the key.
        if not known_healthy and Message.objects.filter(pk=message.pk, status=DeliveryStatus.SENT).exists():
            return
        try:
            if message.channel == Channel.EMAIL:
                email_provider().send_email(
                    to=message.to, subject=message.subject, text=message.text, html=message.html,
                    message_id=message.message_id_header, reply_to=message.reply_to,
                )
            else:
                sms_provider().send_sms(to=message.to, text=message.text, message_id=message.message_id_header)
        except (ProviderRefused, ProviderThrottled):
            raise
        except ProviderError:
            # No clear answer: it may have been delivered under this key, so these words are final.
            if not message.maybe_sent:
                Message.objects.filter(pk=message.pk).update(maybe_sent=True)
                message.maybe_sent = True
            raise

    result = call_through_breaker(message.channel, attempt, send, known_healthy=known_healthy)
    now = timezone.now()
    if result["status"] == "done":
        Message.objects.filter(pk=message.pk).exclude(status=DeliveryStatus.SENT).update(
            status=DeliveryStatus.SENT, sent_at=now, attempts=attempt, last_error="", next_attempt_at=None,
            **_forget_secret(message.secret),
        )
    elif result["status"] == "failed":
        Message.objects.filter(pk=message.pk).exclude(status=DeliveryStatus.SENT).update(
            status=DeliveryStatus.RETRYING, attempts=attempt, last_error=result["error"],
            next_attempt_at=now + dt.timedelta(seconds=result["retry_in"]),
        )
    return result


def give_up_message(*, message_id: int) -> None:
    secret = Message.objects.values_list("secret", flat=True).get(pk=message_id)
    Message.objects.filter(pk=message_id).exclude(status=DeliveryStatus.SENT).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, **_forget_secret(secret)
    )
