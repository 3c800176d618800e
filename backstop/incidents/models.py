"""Incident records: one outage from detection to resolution, what customers were told, and what the system saw.

An incident opens by itself when a provider's circuit breaker opens (``detection``), or by staff by hand (a bad
deploy). Its lifecycle is detected -> investigating -> mitigated -> resolved (``lifecycle.TRANSITIONS``); its
severity follows the written rule in ``severity``. The support desk's incident card (support.Incident: the cases a
cause grouped) is a different record with a different job; this one is what the status page and the timeline show.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class IncidentState(models.TextChoices):
    DETECTED = "detected", "detected"
    INVESTIGATING = "investigating", "investigating"
    MITIGATED = "mitigated", "mitigated"
    RESOLVED = "resolved", "resolved"


class Severity(models.IntegerChoices):
    SEV1 = 1, "SEV-1"
    SEV2 = 2, "SEV-2"
    SEV3 = 3, "SEV-3"


class OpenedBy(models.TextChoices):
    BREAKER = "breaker", "a provider's circuit breaker opened"
    FAILURES = "failures", "customers failing on one provider before its breaker opened"
    STAFF = "staff", "opened by staff"


class IncidentManager(models.Manager["Incident"]):
    def live(self) -> models.QuerySet[Incident]:
        return self.exclude(state=IncidentState.RESOLVED).order_by("started_at")


class Incident(models.Model):
    title = models.CharField(max_length=200)
    # The capability customers lost ("workspace", "email", ...): a provider's name, or "" when staff opened it
    # about something else (a bad deploy).
    capability = models.CharField(max_length=40, blank=True, default="")
    # "provider:<name>" for a breaker's incident: one live incident per cause.
    cause = models.CharField(max_length=80, blank=True, default="")
    opened_by = models.CharField(max_length=10, choices=OpenedBy.choices)
    opened_by_staff = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    state = models.CharField(max_length=14, choices=IncidentState.choices, default=IncidentState.DETECTED)
    severity = models.IntegerField(choices=Severity.choices, default=Severity.SEV3)
    # Set by a person: the automatic rule no longer changes it.
    severity_set_by_staff = models.BooleanField(default=False)
    # The outage as measured (the breaker's first failure and first success after it) when the system saw it.
    started_at = models.DateTimeField(default=timezone.now)
    detected_at = models.DateTimeField(default=timezone.now)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    customers_affected = models.IntegerField(default=0)  # the peak, kept after customers recover
    created_at = models.DateTimeField(default=timezone.now)

    objects = IncidentManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cause"], condition=~Q(state="resolved") & ~Q(cause=""),
                                    name="incidents_one_live_per_cause"),
        ]

    def __str__(self) -> str:
        return f"incident {self.pk}: {self.title} ({self.state})"


class IncidentUpdate(models.Model):
    """What customers were told, on the status page and the banner."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    # One per click (the form carries it): a double click posts one update.
    idempotency_key = models.CharField(max_length=120, unique=True)
    state = models.CharField(max_length=14, choices=IncidentState.choices)
    body = models.CharField(max_length=1000)
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.incident_id}: {self.body[:40]}"


class EventKind(models.TextChoices):
    BREAKER_OPENED = "breaker_opened", "circuit breaker opened"
    FIRST_FAILURE = "first_failure", "first failed attempt"
    FIRST_RECOVERY = "first_recovery", "first attempt that succeeded again"
    BREAKER_CLOSED = "breaker_closed", "circuit breaker closed"
    STATE_CHANGED = "state_changed", "state changed"
    SEVERITY_CHANGED = "severity_changed", "severity changed"
    UPDATE_POSTED = "update_posted", "update posted"
    AMENDS_SENT = "amends_sent", "amends sent"
    DEPLOY = "deploy", "deploy"


class IncidentEvent(models.Model):
    """One thing the system recorded, with its time and source. A deploy belongs to no incident: the timeline
    takes the deploys that fall inside an incident's window."""

    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    # Who or what recorded it: "breaker:workspace", "staff:ada@example.com", "serve", "incidents-watch".
    source = models.CharField(max_length=120)
    text = models.CharField(max_length=500)
    detail = models.JSONField(default=dict)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # The breaker's facts are recorded once per incident, whichever process sees them first.
            models.UniqueConstraint(fields=["incident", "kind", "at"], name="one_event_per_kind_and_time"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.kind}"


class AffectedSample(models.Model):
    """Customers affected at one moment: the chart of the incident is drawn from these."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField(default=timezone.now)
    customers = models.IntegerField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.customers}"


class AffectedCustomer(models.Model):
    """A customer this incident touched, and what they lost: the counts, the chart and the amends read these."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # What they could not do: a setup step waiting on the provider ("workspace") or an attention record's kind.
    lost = models.CharField(max_length=40)
    harm = models.IntegerField()
    first_seen_at = models.DateTimeField(default=timezone.now)
    recovered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "account"], name="one_row_per_affected_customer")]

    def __str__(self) -> str:
        return f"{self.incident_id}: account {self.account_id}"


# --- Post-mortem ------------------------------------------------------------------------------------------

class Priority(models.TextChoices):
    P0 = "P0", "P0: before anything else"
    P1 = "P1", "P1: this quarter"
    P2 = "P2", "P2: when there is room"


class TeamCapacity(models.Model):
    """Set once (one row): what the team can give follow-up work, so the post-mortem can say when it is too much."""

    people = models.PositiveIntegerField()
    hours_per_week = models.PositiveIntegerField()  # each person's hours a week for incident follow-up
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.people} people x {self.hours_per_week} h/week"


class ActionItem(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="action_items")
    title = models.CharField(max_length=300)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    priority = models.CharField(max_length=2, choices=Priority.choices)
    due = models.DateField()
    estimate_hours = models.PositiveIntegerField()
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["done_at", "priority", "due", "id"]

    def __str__(self) -> str:
        return f"{self.priority} {self.title}"


class PostMortem(models.Model):
    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="postmortem")
    markdown = models.TextField()
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # The action items are reviewed 30 days after the incident: the reminder is sent once.
    review_due_at = models.DateTimeField()
    review_reminded_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"post-mortem of {self.incident_id}"


# --- Amends -------------------------------------------------------------------------------------------------

class AmendsAction(models.Model):
    """One staff click that told each affected customer what they lost (and credited the paying ones): audited, and
    its counts shown on the incident. The click's key makes a double click one action; each customer's message and
    credit have their own keys, so even two separate clicks tell and credit each customer once."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="amends")
    idempotency_key = models.CharField(max_length=120, unique=True)
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    credit_days = models.PositiveIntegerField(default=0)
    messages_sent = models.IntegerField(default=0)
    credits_granted = models.IntegerField(default=0)
    already_done = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"amends {self.pk} of incident {self.incident_id}"
