"""Attention records: "a person may need to look at this customer".

The app that noticed a problem (accounts, billing) raises a record and says how badly the customer is hurt and what
caused it; whoever helps customers (the support desk) subscribes to new records. This app knows no domain app.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class AttentionKind(models.TextChoices):
    SETUP_STALLED = "setup_stalled", "account setup ran out of retries"
    EMAIL_UNDELIVERED = "email_undelivered", "an email could not be delivered"
    PAYMENT_UNMATCHED = "payment_unmatched", "a processor payment matches no checkout"
    ORDER_WITHOUT_PAYMENT = "order_without_payment", "an order has no payment at the processor"
    PAYMENT_UNRESOLVED = "payment_unresolved", "a checkout's payment could not be settled"
    REFUND_PARTIAL = "refund_partial", "part of an order was refunded at the processor"
    REFUND_UNCONFIRMED = "refund_unconfirmed", "an order says refunded and the processor does not"
    EMAIL_KEY_SHARED = "email_key_shared", "two accounts share one email identity since it changed"


class Harm(models.IntegerChoices):
    """How badly the customer is hurt; the desk queue is ordered by this, then by age."""

    QUESTION = 0, "a question, nothing wrong found"
    DEGRADED = 10, "degraded"
    LOCKED_OUT = 20, "locked out"
    MONEY = 30, "money taken without access"


def provider_cause(provider: str) -> str:
    """A record's (or signal's) ``cause`` when a provider's failure raised it."""
    return f"provider:{provider}"


def provider_of_cause(cause: str) -> str:
    return cause.removeprefix("provider:") if cause.startswith("provider:") else ""


class AttentionRecord(models.Model):
    kind = models.CharField(max_length=40, choices=AttentionKind.choices)
    # Empty for records about something no account owns yet, such as a payment from an unknown buyer.
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="attention"
    )
    # What the record is about when that is not an account (e.g. "payment:pi_123").
    subject = models.CharField(max_length=200, blank=True, default="")
    # Stated by whoever raises the record, so the desk needs no table of other apps' kinds.
    harm = models.IntegerField(choices=Harm.choices)
    # What caused it, when known: "provider:email", "provider:workspace"; empty when nothing outside us failed.
    cause = models.CharField(max_length=80, blank=True)
    summary = models.CharField(max_length=500)
    detail = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        # The table the support app created: the model moved here without moving its rows.
        db_table = "support_attentionrecord"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "kind"], condition=Q(resolved_at__isnull=True), name="one_open_record_per_kind"
            ),
            models.UniqueConstraint(
                fields=["kind", "subject"], condition=Q(resolved_at__isnull=True) & ~Q(subject=""),
                name="one_open_record_per_subject",
            ),
        ]

    def __str__(self) -> str:
        return self.summary
