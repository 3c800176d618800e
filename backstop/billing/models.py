"""Catalogue, purchase attempts, orders and entitlements, and the books kept about them.

A purchase attempt is recorded before any money moves; every later state is a conditional UPDATE from the
states it may come from, so the checkout workflow, a webhook, reconciliation and support can all race on
one payment and still leave exactly one order and one entitlement behind.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.conf import settings
from django.core.validators import slug_re
from django.db import models
from django.db.models import Q
from django.utils import timezone

from backstop.lib import email_identity

# Crockford's base32 without look-alikes: a reference read out over the phone survives.
_REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class BuyerEmailQuerySet(models.QuerySet[Any]):
    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        rows = list(objs)
        for row in rows:
            row.fill_email_key()
        return super().bulk_create(rows, *args, **kwargs)

    def of_customer(self, *, email: str, account: Any) -> models.QuerySet[Any]:
        """Rows of the customer this address names (whichever form of it was typed), or of their account."""
        owner = Q(email_key=email_identity.email_key(email))
        if account is not None:
            owner |= Q(account=account)
        return self.filter(owner)


class BuyerEmail(models.Model):
    """The buyer's email as typed, and the customer it names (``lib.email_identity``): every lookup of a buyer's
    rows by email goes through ``email_key``, the key an account of the same address has."""

    email = models.CharField(max_length=254)
    # Empty only on a row the key's change left for a person (accounts.EmailKeyCollision): found by account alone.
    email_key = models.CharField(max_length=254, blank=True, db_index=True)

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.fill_email_key()
        super().save(*args, **kwargs)

    def fill_email_key(self) -> None:
        # Set when the row is written first, never recomputed on a later save: a row left unlinked stays so.
        if self._state.adding and not self.email_key:
            self.email_key = email_identity.email_key(self.email)


def new_reference() -> str:
    """``BK-XXXXX-XXXXX``: 50 random bits, unguessable and still easy to read out."""
    chars = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(10))
    return f"BK-{chars[:5]}-{chars[5:]}"


class ProductManager(models.Manager["Product"]):
    def for_sale(self, code: str) -> Product | None:
        # A code no product could have (a slug's characters only) is unknown without asking the database: PostgreSQL
        # refuses a text holding a NUL byte with an error, which made a checkout with one a 500 (found by the fuzzer).
        if len(code) > self.model._meta.get_field("code").max_length or not slug_re.match(code):  # type: ignore[operator]
            return None
        return self.filter(code=code, active=True).first()


class Product(models.Model):
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    period_days = models.PositiveIntegerField()
    active = models.BooleanField(default=True)

    objects = ProductManager()

    def __str__(self) -> str:
        return self.name


class AttemptState(models.TextChoices):
    RECORDED = "recorded", "recorded, not charged yet"
    CHARGING = "charging", "asking the processor to charge"
    CHARGED = "charged", "charged, order not finished yet"
    FULFILLED = "fulfilled", "paid and fulfilled"
    DECLINED = "declined", "not charged"
    IN_DOUBT = "in_doubt", "the processor's answer is unknown"


# States from which a charge may still be under way: a webhook or reconciliation may move them on.
OPEN_ATTEMPT_STATES = (AttemptState.RECORDED, AttemptState.CHARGING, AttemptState.CHARGED, AttemptState.IN_DOUBT)
# States in which the purchase workflow may still call the processor (nothing settled yet).
SETTLING_STATES = (AttemptState.RECORDED, AttemptState.CHARGING)
# Set when an in-doubt checkout turned out to have never reached the card.
NOT_CHARGED = "not_charged"


class BuyerSaw(models.TextChoices):
    """What the buyer has been told about their checkout, the worst so far (later values outrank earlier ones)."""

    NOTHING = "", "nothing recorded"
    WAITING = "waiting", "told it takes a few seconds (processing, finishing)"
    PAID = "paid", "told it is paid"
    # The API was sent the same checkout again: the first answer never reached the client (or it asked twice at once).
    ASKED_AGAIN = "asked_again", "sent the same checkout again"
    LATE = "late", "told it is taking longer than usual"
    IN_DOUBT = "in_doubt", "told we are checking whether the card was charged"
    OFFLINE = "offline", "told the page cannot reach our server"
    ERROR = "error", "shown an error page"


BUYER_SAW_RANK = [choice.value for choice in BuyerSaw]
# Told that something went wrong: the confirmation apologises and names it, however quickly it all ended.
BUYER_SAW_TROUBLE = (BuyerSaw.LATE, BuyerSaw.IN_DOUBT, BuyerSaw.OFFLINE, BuyerSaw.ERROR)


class PurchaseAttemptManager(models.Manager.from_queryset(BuyerEmailQuerySet)):  # type: ignore[misc]
    def by_reference(self, reference: str) -> PurchaseAttempt | None:
        return self.select_related("product").filter(reference=reference.strip().upper()).first()

    def by_idempotency_key(self, key: str) -> PurchaseAttempt | None:
        return self.filter(idempotency_key=key).first()

    def move(self, attempt_id: int, *, from_states: tuple[str, ...], to: str, **fields: Any) -> bool:
        """Conditional state change: True for the one caller whose UPDATE found the attempt in ``from_states``."""
        return bool(
            self.filter(pk=attempt_id, state__in=from_states).update(state=to, updated_at=timezone.now(), **fields)
        )

    def note_buyer_saw(self, attempt_id: int, saw: str) -> bool:
        """Write down that the buyer was told ``saw``, unless they were told something that outranks it already.

        Leaves ``updated_at`` alone: what a page showed is not progress of the checkout (the sweeps read it).
        """
        lower = BUYER_SAW_RANK[:BUYER_SAW_RANK.index(saw)]
        return bool(self.filter(pk=attempt_id, buyer_saw__in=lower).update(buyer_saw=saw))

    def stuck(self, *, before: dt.datetime) -> models.QuerySet[PurchaseAttempt]:
        """Attempts not finished and untouched since ``before``: their workflow may have died."""
        return self.filter(state__in=OPEN_ATTEMPT_STATES, updated_at__lt=before).order_by("id")


class PurchaseAttempt(BuyerEmail):
    """One press of "Pay", recorded before the card is charged; the reference the buyer is shown."""

    reference = models.CharField(max_length=20, unique=True, default=new_reference)
    # The client's Idempotency-Key: a double click, a retry, a refresh map to this one attempt.
    idempotency_key = models.CharField(max_length=255, unique=True)
    # What was asked for under that key: the same key with another request is refused, as Stripe does.
    request_fingerprint = models.CharField(max_length=64)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="attempts")
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="purchases"
    )
    payment_method = models.CharField(max_length=100)
    state = models.CharField(max_length=12, choices=AttemptState.choices, default=AttemptState.RECORDED)
    payment_id = models.CharField(max_length=100, blank=True, default="", db_index=True)
    decline_code = models.CharField(max_length=60, blank=True, default="")
    decline_message = models.CharField(max_length=300, blank=True, default="")
    last_error = models.CharField(max_length=500, blank=True, default="")
    # Calls to the processor for this attempt (each with the same idempotency key).
    charge_calls = models.IntegerField(default=0)
    # The checkout did not go straight through (crash, restart, unknown answer): the email says sorry.
    interrupted = models.BooleanField(default=False)
    # What the buyer's pages and API answers told them (BuyerSaw), which decides the confirmation email's words.
    buyer_saw = models.CharField(max_length=12, choices=BuyerSaw.choices, blank=True, default=BuyerSaw.NOTHING)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    charge_started_at = models.DateTimeField(null=True, blank=True)
    charged_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    in_doubt_since = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    # The purchase this attempt stands for, held while it may still charge and while the plan it bought runs:
    # "<customer's email key>|<product>", or "renew|<entitlement>|<its end>" for an extension of one plan period.
    # Unique (NULLs are distinct), so two checkouts of one plan for one customer are never both recorded, whatever
    # their idempotency keys; set NULL (audited, ``claims.release_plan_claim``) when it no longer stands for one.
    plan_claim = models.CharField(max_length=320, null=True, blank=True, unique=True, default=None)
    # An explicit extension: the plan period it extends (its entitlement starts when that one ends).
    renews = models.ForeignKey("Entitlement", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="renewals")

    objects = PurchaseAttemptManager()

    class Meta:
        indexes = [models.Index(fields=["state", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.reference}: {self.state}"

    @property
    def processor_key(self) -> str:
        """The idempotency key every processor call for this attempt carries: one attempt, one charge."""
        return f"backstop-purchase-{self.pk}"

    @property
    def workflow_id(self) -> str:
        return purchase_workflow_id(self.pk)


PURCHASE_QUEUE = "purchase"


def purchase_workflow_id(attempt_id: int) -> str:
    return f"purchase:{attempt_id}"


class OrderStatus(models.TextChoices):
    PAID = "paid", "paid"
    REFUNDED = "refunded", "refunded"


class FulfilledBy(models.TextChoices):
    CHECKOUT = "checkout", "the checkout itself"
    WEBHOOK = "webhook", "the processor's webhook"
    RECONCILIATION = "reconciliation", "reconciliation"
    SUPPORT = "support", "a support agent"


class OrderManager(models.Manager.from_queryset(BuyerEmailQuerySet)):  # type: ignore[misc]
    def by_reference(self, reference: str) -> Order | None:
        return self.filter(reference=reference.strip().upper()).first()


class Order(BuyerEmail):
    """A paid purchase: exactly one per processor payment and one per attempt."""

    reference = models.CharField(max_length=20, unique=True)
    attempt = models.OneToOneField(PurchaseAttempt, on_delete=models.PROTECT, related_name="order")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    payment_id = models.CharField(max_length=100, unique=True)
    # The processor's creation time of the payment: reconciliation walks both sides in this order.
    payment_created_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=10, choices=OrderStatus.choices, default=OrderStatus.PAID)
    fulfilled_by = models.CharField(max_length=20, choices=FulfilledBy.choices)
    # The processor's refunded total of the payment, mirrored: below amount_cents while the order stays paid (a partial
    # refund), equal to it once refunded.
    refunded_cents = models.PositiveIntegerField(default=0)
    refund_id = models.CharField(max_length=100, blank=True, default="")
    # When we last learnt of a refund (indexed: reconciliation reads the refunded orders, few among many).
    refunded_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = OrderManager()

    def __str__(self) -> str:
        return f"{self.reference}: {self.status}"


class EntitlementState(models.TextChoices):
    ACTIVE = "active", "active"
    REVOKED = "revoked", "ended by a refund"


class EntitlementManager(models.Manager.from_queryset(BuyerEmailQuerySet)):  # type: ignore[misc]
    pass


class Entitlement(BuyerEmail):
    """What the order buys: access to the product until ``ends_at``."""

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="entitlement")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="entitlements")
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="entitlements"
    )
    state = models.CharField(max_length=10, choices=EntitlementState.choices, default=EntitlementState.ACTIVE)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = EntitlementManager()

    def __str__(self) -> str:
        return f"{self.product} for {self.email} until {self.ends_at:%Y-%m-%d}"


class LearntFrom(models.TextChoices):
    """How we learnt what the processor says about a payment."""

    CHARGE = "charge", "the charge's answer"
    WEBHOOK = "webhook", "the processor's webhook"
    RECONCILIATION = "reconciliation", "reconciliation"
    LOOKUP = "lookup", "a lookup at the processor"
    BOOKS = "books", "our books, before statuses were recorded"


# The status of a checkout at the processor when it has no payment for it at all (not one of Stripe's statuses).
NO_PAYMENT = "no_payment"


class ProcessorStatus(models.Model):
    """What the processor last said about one of its payments, and as of when: read by the desk, which never calls
    the processor on a page view. Whatever learns the processor's answer (the charge, a webhook, reconciliation, a
    lookup staff ask for) records it here (``billing.processor_status``); a newer answer replaces an older one.

    A row without a payment id says the processor had no payment for its checkout when we asked.
    """

    payment_id = models.CharField(max_length=100, blank=True, default="")
    attempt = models.ForeignKey(PurchaseAttempt, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="processor_statuses")
    # The processor's own word ("succeeded", "processing", "requires_payment_method", ...) or NO_PAYMENT.
    status = models.CharField(max_length=40)
    amount_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True, default="")
    # Only ever grows: refunds are never undone, and an answer that does not mention refunds says nothing of them.
    amount_refunded_cents = models.PositiveIntegerField(default=0)
    # When the processor said it: the event's creation time, or the moment our call was answered.
    as_of = models.DateTimeField()
    learnt_from = models.CharField(max_length=20, choices=LearntFrom.choices)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["payment_id"], condition=~Q(payment_id=""),
                                    name="one_processor_status_per_payment"),
            models.UniqueConstraint(fields=["attempt"], condition=Q(payment_id=""),
                                    name="one_no_payment_status_per_attempt"),
        ]
        verbose_name_plural = "processor statuses"

    def __str__(self) -> str:
        return f"{self.payment_id or self.attempt_id}: {self.status} as of {self.as_of:%Y-%m-%d %H:%M:%S}"


class ProcessedWebhookEvent(models.Model):
    """A processor event already handled: a replayed delivery finds its id here and changes nothing."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    payment_id = models.CharField(max_length=100, blank=True, default="")
    outcome = models.CharField(max_length=200, blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.event_id} ({self.type})"


class KnownRefundManager(models.Manager["KnownRefund"]):
    def refunded_cents(self, payment_id: str) -> int:
        return self.filter(payment_id=payment_id).values_list("amount_refunded", flat=True).first() or 0


class KnownRefund(models.Model):
    """What the processor told us has been refunded of one payment, order or not.

    A refund can reach us before the order it belongs to exists (a ``charge.refunded`` event ahead of the payment's,
    a refund made while the checkout was in doubt): it is kept here and applied when the order appears. The amount
    only grows: a late, smaller total never lowers it.
    """

    payment_id = models.CharField(max_length=100, unique=True)
    amount_refunded = models.PositiveIntegerField()
    # Who told us last: system:webhook, a reconciler, a staff member's refund.
    source = models.CharField(max_length=200)
    first_seen_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = KnownRefundManager()

    def __str__(self) -> str:
        return f"{self.payment_id}: {self.amount_refunded} refunded"


class RefundRequestOutcome(models.TextChoices):
    ASKED = "asked", "asked, no answer yet"
    REFUNDED = "refunded", "refunded by the processor"
    REFUSED = "refused", "refused by the processor"
    FAILED = "failed", "no clear answer from the processor"


class RefundRequest(models.Model):
    """One refund we asked the processor for, written before the call: whoever records the refund's effect (this
    request, the webhook, reconciliation) names the person who asked in the audit trail."""

    # The processor call's idempotency key: the payment and the refunded total it starts from, so every click on
    # the same state is one refund, and the remainder after a partial refund is a refund of its own.
    idempotency_key = models.CharField(max_length=200, unique=True)
    payment_id = models.CharField(max_length=100, db_index=True)
    reference = models.CharField(max_length=20, blank=True, default="")
    from_cents = models.PositiveIntegerField()
    amount_cents = models.PositiveIntegerField()
    requested_by = models.CharField(max_length=200)
    outcome = models.CharField(max_length=10, choices=RefundRequestOutcome.choices,
                               default=RefundRequestOutcome.ASKED)
    refund_id = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.amount_cents} of {self.payment_id} by {self.requested_by}: {self.outcome}"


class ReconciliationWatermarkManager(models.Manager["ReconciliationWatermark"]):
    def reconciled_until(self, name: str) -> dt.datetime | None:
        return self.filter(name=name).values_list("reconciled_until", flat=True).first()

    def advance(self, name: str, *, until: dt.datetime, summary: dict[str, Any]) -> None:
        """Move the watermark forward only: a slow older run never moves it back."""
        now = timezone.now()
        self.get_or_create(name=name)
        self.filter(name=name).update(last_run_at=now, last_summary=summary)
        self.filter(Q(reconciled_until__isnull=True) | Q(reconciled_until__lt=until), name=name).update(
            reconciled_until=until
        )


class ReconciliationWatermark(models.Model):
    """How far reconciliation has checked processor payments (by their creation time)."""

    name = models.CharField(primary_key=True, max_length=40)
    reconciled_until = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_summary = models.JSONField(default=dict)

    objects = ReconciliationWatermarkManager()

    def __str__(self) -> str:
        return f"{self.name} until {self.reconciled_until}"


class Credit(models.Model):
    """Days of access added to a customer's plan by support, e.g. to make up for our outage. Once per key."""

    key = models.CharField(max_length=160, unique=True)
    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="credits")
    days = models.PositiveIntegerField()
    reason = models.CharField(max_length=300, blank=True, default="")
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.days} days on {self.entitlement} by {self.actor}"


class AuditEntry(models.Model):
    """Every action on money: who, what, when, and the state before and after."""

    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=60)
    reference = models.CharField(max_length=20, db_index=True)
    payment_id = models.CharField(max_length=100, blank=True, default="")
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.reference}"
