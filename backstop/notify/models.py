"""Every email and SMS we send, with its delivery state, and the local mailbox the fakes deliver to."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from backstop.lib.email_identity import email_key

# The workflow queue deliveries run on (registered by NotifyConfig.ready()).
DELIVERY_QUEUE = "delivery"


class Channel(models.TextChoices):
    EMAIL = "email", "email"
    SMS = "sms", "SMS"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "waiting to be sent"
    RETRYING = "retrying", "failed, will try again"
    SENT = "sent", "handed to the provider"
    FAILED = "failed", "could not be delivered"


class RecipientQuerySet(models.QuerySet[Any]):
    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        rows = list(objs)
        for row in rows:
            row.fill_to_key()
        return super().bulk_create(rows, *args, **kwargs)

    def to_customer(self, address: str) -> models.QuerySet[Any]:
        """Rows sent to this address, however its case or its domain's form was typed (``lib.email_identity``)."""
        key = email_key(address)
        return self.filter(to_key=key) if key else self.none()


class Recipient(models.Model):
    """Whom a message went to, as given, and the customer that names: lookups by address go through ``to_key``."""

    # An email address or a phone number; the key of a number is the number.
    to = models.CharField(max_length=320)
    # Empty only on a message the key's change left for a person (accounts.EmailKeyCollision).
    to_key = models.CharField(max_length=320, blank=True, db_index=True)

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.fill_to_key()
        super().save(*args, **kwargs)

    def fill_to_key(self) -> None:
        # Set when the row is written first, never on a later save: a row left unlinked stays so.
        if self._state.adding and not self.to_key:
            self.to_key = email_key(self.to)


class MessageManager(models.Manager.from_queryset(RecipientQuerySet)):  # type: ignore[misc]
    def never_handed_on(self, *, since: dt.datetime, before: dt.datetime,
                        codes_since: dt.datetime) -> models.QuerySet[Message]:
        """Messages recorded between ``since`` and ``before`` that no attempt has touched yet, oldest first.

        Welcome emails are left out: the account's setup delivers them, and its own safety net restarts it. Sign-in
        codes recorded before ``codes_since`` are left out too: they no longer work.
        """
        return (self.filter(status=DeliveryStatus.QUEUED, attempts=0, created_at__gte=since, created_at__lt=before)
                .exclude(kind="welcome").exclude(kind="sign_in_code", created_at__lt=codes_since)
                .order_by("created_at"))


class Message(Recipient):
    """One outgoing message. ``key`` is its idempotency key: a message is created and sent once."""

    key = models.CharField(max_length=200, unique=True)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    kind = models.CharField(max_length=40)
    subject = models.CharField(max_length=300, blank=True, default="")
    text = models.TextField()
    html = models.TextField(blank=True, default="")
    # A one-time secret inside subject/text/html (a sign-in code): kept only until the message is sent or given up,
    # then masked there, so the outbox and the support desk never show a usable code.
    secret = models.CharField(max_length=64, blank=True, default="")
    # Where the customer's answer goes (a case's own address, support.reply_addresses), and the Message-ID the sender
    # chose for threading; empty: no Reply-To, and the id made from the key (``message_id_header``).
    reply_to = models.CharField(max_length=320, blank=True, default="")
    header_message_id = models.CharField(max_length=300, blank=True, default="")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    attempts = models.IntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # An attempt ended without a clear refusal (a timeout, a dropped connection): the provider may hold this content
    # under the message's key, so its words are never changed again (``reword_late_email``).
    maybe_sent = models.BooleanField(default=False)
    # The message itself says sorry for being late (a welcome email sent after an outage): support sends no separate
    # apology for that delay.
    carries_apology = models.BooleanField(default=False)

    objects = MessageManager()

    class Meta:
        indexes = [
            # The safety net's look for messages never handed on (every half minute): the few still queued.
            models.Index(fields=["created_at"], condition=models.Q(status="queued"), name="notify_message_queued"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.kind} to {self.to}: {self.status}"

    @property
    def message_id_header(self) -> str:
        # Stable across retries, so a receiving server can drop a duplicate after a crash mid-send.
        return self.header_message_id or f"<{self.key.replace(':', '.')}@backstop>"


class LocalMailboxManager(models.Manager.from_queryset(RecipientQuerySet)):  # type: ignore[misc]
    pass


class LocalMailboxItem(Recipient):
    """What the local fake email/SMS providers "delivered": shown at /demo/mailbox."""

    channel = models.CharField(max_length=10, choices=Channel.choices)
    subject = models.CharField(max_length=300, blank=True, default="")
    text = models.TextField()
    html = models.TextField(blank=True, default="")
    message_id = models.CharField(max_length=300, blank=True, default="")
    reply_to = models.CharField(max_length=320, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    objects = LocalMailboxManager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.channel} to {self.to}"
