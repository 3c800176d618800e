"""The support desk's records: the customer's case, its signals, incidents and the audit trail.

An AttentionRecord (``backstop.attention``) is raised by the app that noticed a problem (accounts, billing). Every
such record, every undeliverable message, every contact from the customer and every customer stranded by a failing
provider becomes a Signal on the customer's one open Case. Cases that share a cause hang off one Incident.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from backstop.attention.models import AttentionKind, AttentionRecord, Harm, provider_cause

# --- Cases -------------------------------------------------------------------------------------------

class CaseState(models.TextChoices):
    OPEN = "open", "open"
    RESOLVED = "resolved", "resolved"


class Resolution(models.TextChoices):
    AUTOMATION = "automation", "fixed by automation"
    STAFF = "staff", "closed by staff"
    MERGED = "merged", "merged into another case"


class CaseManager(models.Manager["Case"]):
    def open_for(self, customer_key: str) -> Case | None:
        return self.filter(customer_key=customer_key, state=CaseState.OPEN).first()

    def queue(self) -> models.QuerySet[Case]:
        """Open cases that need a human: not waiting on an incident, nor on the customer, nor snoozed (a snooze past
        its time is awake, whether or not the sweep has cleared it yet), worst harm first, then oldest."""
        return (self.filter(state=CaseState.OPEN, incident__isnull=True, waiting_since__isnull=True)
                .exclude(snoozed_until__gt=timezone.now()).order_by("-harm", "opened_at", "id"))

    def sleeping(self) -> models.QuerySet[Case]:
        """Open cases put aside by staff: waiting on the customer, or snoozed until a time still to come."""
        return (self.filter(state=CaseState.OPEN)
                .filter(Q(waiting_since__isnull=False) | Q(snoozed_until__gt=timezone.now()))
                .order_by("snoozed_until", "waiting_since", "id"))

    def accounts_waiting_on_an_incident(self, account_ids: Collection[int]) -> set[int]:
        """Of these accounts, those whose open case waits on an incident (not in the queue): the desk says automation
        is retrying for them and no person needs to act."""
        return set(self.filter(state=CaseState.OPEN, incident__isnull=False, account_id__in=account_ids)
                   .values_list("account_id", flat=True))


class Case(models.Model):
    """Everything about one customer that needs (or needed) support, from the first signal until resolved."""

    # The case-folded email: a customer who wrote in without an account still has exactly one case.
    customer_key = models.CharField(max_length=254)
    email = models.CharField(max_length=254)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="support_cases"
    )
    state = models.CharField(max_length=10, choices=CaseState.choices, default=CaseState.OPEN)
    # Denormalised from the open signals on every change, so the queue is one indexed query.
    harm = models.IntegerField(choices=Harm.choices, default=Harm.QUESTION)
    kinds = models.JSONField(default=list)
    cause = models.CharField(max_length=80, blank=True, default="")
    summary = models.CharField(max_length=500, blank=True, default="")
    incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="cases"
    )
    # The incident this case was handed out of (automation could not finish it): it is not attached again.
    left_incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Bumped by every signal that joins: automation resolves a case only if nothing joined since it looked.
    version = models.IntegerField(default=0)
    opened_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    human_touched_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Kept at resolution so the week's median is a sort of integers, not a date difference per row.
    resolution_seconds = models.IntegerField(null=True, blank=True)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True, default="")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution_note = models.CharField(max_length=500, blank=True, default="")
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Working states (support.working_states): who has it, and whether it is put aside until the customer answers
    # or until a time. Anything new about the customer (a signal joining: they wrote, a payment failed) wakes it.
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    waiting_since = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)

    objects = CaseManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer_key"], condition=Q(state="open"), name="one_open_case_per_customer"
            )
        ]
        indexes = [
            # The queue's order, then what its other conditions read: the page walks it in order and its count
            # ("Needs a person (6,700)") reads the index alone, not 6,700 rows of the table.
            models.Index(fields=["state", "incident", "-harm", "opened_at", "id", "waiting_since", "snoozed_until"],
                         name="support_case_queue_v2"),
            # The queue's page in its order, for PostgreSQL: it does not walk the index above in order past its
            # `incident IS NULL`, and sorted all 6,700 rows (joined to their accounts) for the top 50.
            models.Index(fields=["-harm", "opened_at", "id", "snoozed_until"], name="support_case_queue_open",
                         condition=Q(state="open", incident__isnull=True, waiting_since__isnull=True)),
            models.Index(fields=["opened_at"], name="support_case_opened"),
            # The week's resolved side (counts per day, automated, the median's sort) from the index alone.
            models.Index(fields=["resolved_at", "resolution", "resolution_seconds"], name="support_case_resolved_v2"),
            models.Index(fields=["customer_key"], name="support_case_customer"),
        ]

    def __str__(self) -> str:
        return f"case {self.pk} for {self.email}: {self.state}"

    @property
    def is_open(self) -> bool:
        return self.state == CaseState.OPEN

    def seconds_open(self, until: dt.datetime) -> int:
        return max(0, round((until - self.opened_at).total_seconds()))


class SignalKind(models.TextChoices):
    """Signals the desk raises itself; attention records keep their own AttentionKind as the signal kind."""

    SETUP_DELAYED = "setup_delayed", "setup waiting for a failing provider"
    MESSAGE_UNDELIVERED = "message_undelivered", "a message could not be delivered"
    CONTACT = "contact", "the customer wrote to us"
    PAID_WITHOUT_ACCESS = "paid_without_access", "paid, and no access for it"


# Signal kinds about an account's setup: stalled (out of retries) or delayed (waiting on a failing provider).
SETUP_KINDS = frozenset({AttentionKind.SETUP_STALLED.value, SignalKind.SETUP_DELAYED.value})


class SignalManager(models.Manager["Signal"]):
    def accounts_waiting_on_workspace_in_a_case(self, account_ids: Collection[int]) -> set[int]:
        """Of these accounts, those whose case holds an open signal of their workspace's setup: support tells them
        the workspace is ready when the case settles."""
        return set(self.filter(case__account_id__in=account_ids, kind__in=SETUP_KINDS,
                               cause=provider_cause("workspace"), cleared_at__isnull=True)
                   .values_list("case__account_id", flat=True))


class Signal(models.Model):
    """One thing we learned about the customer; it is cleared when the problem behind it is gone."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="signals")
    kind = models.CharField(max_length=40)
    # What caused it, when known: "provider:email", "provider:workspace", "provider:payments"...
    cause = models.CharField(max_length=80, blank=True, default="")
    harm = models.IntegerField(choices=Harm.choices, default=Harm.QUESTION)
    summary = models.CharField(max_length=500)
    detail = models.JSONField(default=dict)
    # Where it came from ("attention:12", "message:40", "contact:3", "setup:7:workspace"): joins are idempotent.
    source = models.CharField(max_length=120)
    attention = models.ForeignKey(AttentionRecord, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="signals")
    message = models.ForeignKey("notify.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="support_signals")
    created_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_how = models.CharField(max_length=200, blank=True, default="")

    objects = SignalManager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["source"], condition=Q(cleared_at__isnull=True),
                                    name="one_open_signal_per_source")
        ]
        indexes = [
            models.Index(fields=["case", "cleared_at"], name="support_signal_case"),
            models.Index(fields=["kind", "cleared_at"], name="support_signal_kind"),
            models.Index(fields=["source"], name="support_signal_source"),
        ]

    def __str__(self) -> str:
        return self.summary

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None


class Finding(models.TextChoices):
    """What we saw when a customer wrote in, before any human read it."""

    NO_ACCOUNT = "no_account", "no account for this address"
    ALL_WELL = "all_well", "nothing wrong found"
    SETUP_FIXED = "setup_fixed", "setup was stuck; retried and finished"
    SETUP_RETRYING = "setup_retrying", "setup was stuck; retried, still running"
    SETUP_WAITING = "setup_waiting", "setup waiting for a failing provider"
    SETUP_NEEDS_HUMAN = "setup_needs_human", "setup failing; needs a person"
    EMAIL_UNDELIVERED = "email_undelivered", "our emails are not reaching them; code sent by SMS"
    PAYMENT_FULFILLED = "payment_fulfilled", "paid without access; access given now"
    PAYMENT_NEEDS_HUMAN = "payment_needs_human", "paid without access; needs a person"
    PAYMENT_BEING_CHECKED = "payment_being_checked", "checkout not finished; being settled with the processor"
    PAYMENT_COMPLETE = "payment_complete", "their purchase is paid and active"
    PAYMENT_REFUNDED = "payment_refunded", "their purchase was refunded"
    PAYMENT_NOT_CHARGED = "payment_not_charged", "their checkout was not charged"
    DISABLED = "disabled", "account disabled"
    # Nothing had failed: they wrote while setup was still running. A question for a person, not a fix.
    SETUP_UNDER_WAY = "setup_under_way", "setup still running when they wrote; nothing had failed"
    SETUP_FINISHED_ANYWAY = "setup_finished_anyway", "setup was still running and finished by itself; nothing failed"


class Contact(models.Model):
    """A message from a customer (contact page or API), with what we saw and what we told them.

    The request only writes this row (the intent) and starts its workflow (``support.workflows``): the lookups,
    the fixes and the acknowledgement run after the answer, so the answer's timing says nothing about the address.
    Until the workflow has looked, ``case`` is empty and ``finding`` blank."""

    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.CASCADE, related_name="contacts")
    email = models.CharField(max_length=254)
    customer_key = models.CharField(max_length=254, db_index=True)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    # The reference they typed (an order, an earlier message), and the one we gave them.
    reference = models.CharField(max_length=100, blank=True, default="")
    our_reference = models.CharField(max_length=20, unique=True)
    finding = models.CharField(max_length=30, choices=Finding.choices, blank=True, default="")
    needs_human = models.BooleanField(default=True)
    # What the page showed to whoever typed the address, and what went to the address on file.
    public_reply = models.TextField()
    private_reply = models.TextField()
    # The owner's answer on the page and in the API: what the email says, without its greeting and sign-off.
    page_reply = models.TextField(blank=True, default="")
    acknowledgement = models.ForeignKey("notify.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    # The id the page gave the form: the same form sent again (its answer lost in an outage) is this contact.
    submission_key = models.CharField(max_length=80, blank=True, default="")
    # Sent by the signed-in owner of the address: answered to them in full and counted on their account's budget,
    # never on the budget strangers share for the address (docs/decisions.md, "Contact rate limits").
    from_owner = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["created_at"], condition=Q(answered_at__isnull=True),
                                name="support_contact_unanswered")]
        constraints = [models.UniqueConstraint(fields=["submission_key"], condition=~models.Q(submission_key=""),
                                               name="contact_submitted_once")]

    def __str__(self) -> str:
        return f"contact from {self.email}"


class StrangerNotice(models.Model):
    """When an address was last emailed about a contact nobody signed in as its owner sent: at most once a day, so
    strangers writing about an address cannot fill its owner's inbox (docs/decisions.md, "Contact rate limits")."""

    customer_key = models.CharField(max_length=254, unique=True)
    sent_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"stranger notice to {self.customer_key} at {self.sent_at:%Y-%m-%d %H:%M}"


# --- Incidents ---------------------------------------------------------------------------------------

class IncidentState(models.TextChoices):
    OPEN = "open", "provider failing, automation retrying"
    RECOVERING = "recovering", "provider working again, automation finishing"
    RESOLVED = "resolved", "resolved"


class IncidentManager(models.Manager["Incident"]):
    def active(self) -> models.QuerySet[Incident]:
        return self.exclude(state=IncidentState.RESOLVED).order_by("started_at")


class Incident(models.Model):
    """One cause (a failing provider) behind many cases: one card on the desk, one notification."""

    cause = models.CharField(max_length=80)
    provider = models.CharField(max_length=40, blank=True, default="")
    state = models.CharField(max_length=12, choices=IncidentState.choices, default=IncidentState.OPEN)
    last_error = models.CharField(max_length=500, blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Customers this incident touched, kept after their cases resolve (for the apology and the record).
    customers_affected = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # The incident records (status page, timeline, post-mortem) opened from the same cause while this card was live:
    # linked by whichever of the two opens second (support.incident_facts.link_incident_records). No reverse accessor:
    # the incidents app knows no desk (it asks through incidents.hooks).
    records = models.ManyToManyField("incidents.Incident", blank=True, related_name="+")

    objects = IncidentManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cause"], condition=~Q(state="resolved"),
                                    name="one_live_incident_per_cause")
        ]

    def __str__(self) -> str:
        return f"incident {self.pk}: {self.cause} ({self.state})"


# --- Staff actions, replies, notifications -------------------------------------------------------------

class ActionOutcome(models.TextChoices):
    STARTED = "started", "started"
    DONE = "done", "done"
    ALREADY_DONE = "already_done", "nothing to do: already done"
    FAILED = "failed", "failed"
    # A person's click refused before anything changed (see actions._record_refusal): audited, not an intent used up.
    REFUSED = "refused", "refused: nothing changed"


class SupportAction(models.Model):
    """The audit trail: every action on a case, by a person or by automation (staff empty), with before/after."""

    # One per click (the form carries it), so a double click or a resent form is one action.
    idempotency_key = models.CharField(max_length=120, unique=True)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.CASCADE, related_name="actions")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    action = models.CharField(max_length=40)
    outcome = models.CharField(max_length=20, choices=ActionOutcome.choices, default=ActionOutcome.STARTED)
    note = models.CharField(max_length=500, blank=True, default="")
    params = models.JSONField(default=dict)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    message = models.ForeignKey("notify.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["case", "created_at"], name="support_action_case")]

    def __str__(self) -> str:
        return f"{self.action} on case {self.case_id}: {self.outcome}"

    @property
    def by_automation(self) -> bool:
        return self.staff_id is None


class SavedReply(models.Model):
    """A reply a staff member saved for reuse; placeholders like {name} are filled from the case."""

    title = models.CharField(max_length=100, unique=True)
    body = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class CaseNote(models.Model):
    """A staff member's internal note on a case: for colleagues on the desk, never sent to the customer."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    body = models.TextField()
    # The click that wrote it: the same form sent twice (its answer lost in an outage) is one note.
    idempotency_key = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"note on case {self.case_id}"


class CaseSearchEntry(models.Model):
    """What the desk's search box finds a case by (``support.search``): one row per case, rewritten by the services
    that change what it says. The case's state and outcome are read from the case itself, so closing it leaves this
    row alone. On PostgreSQL a trigram index serves fragments of ``identity`` and a full-text index ``body``; on
    SQLite an FTS5 table (trigram tokenizer) mirrors both through triggers (migration 0012)."""

    case = models.OneToOneField(Case, on_delete=models.CASCADE, primary_key=True, related_name="search_entry")
    # Lower-cased: the address and its key, name, company, phone (as typed and digits only), order references and
    # payment ids, the references the customer quoted and the ones we gave them.
    identity = models.TextField(default="")
    # What they wrote to us, what we learned (signal summaries) and staff's internal notes.
    body = models.TextField(default="")
    indexed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"search entry of case {self.case_id}"


class IncidentSearchEntry(models.Model):
    """What the desk's search box finds an incident record by (``support.search``): its title, capability, last
    error, the updates customers were told and its post-mortem. Rewritten after each save of the record, an update or
    the post-mortem (receivers support registers). On SQLite an FTS5 table (trigram tokenizer) mirrors it through
    triggers; on PostgreSQL a generated tsvector column with a GIN index holds its words (migration 0017)."""

    record = models.OneToOneField("incidents.Incident", on_delete=models.CASCADE, primary_key=True, related_name="+")
    text = models.TextField(default="")
    indexed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"search entry of incident record {self.record_id}"


class CasePresence(models.Model):
    """A case page open in one tab of one member of staff, as its last heartbeat said (support.presence): the other
    tabs on the case say so, live. Rows older than the freshness window mean nothing and are removed as met."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The tab's own id (made by the page, kept for its life): a second tab of the same person is another row.
    tab = models.CharField(max_length=40)
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "staff", "tab"], name="one_presence_per_tab")]
        indexes = [models.Index(fields=["case", "seen_at"], name="support_presence_case")]

    def __str__(self) -> str:
        return f"staff {self.staff_id} on case {self.case_id} ({self.tab})"


class Urgency(models.TextChoices):
    IMMEDIATE = "immediate", "now (money at risk)"
    DIGEST = "digest", "in the next digest"


class StaffNotice(models.Model):
    """Something staff should hear about: at most one per case or incident (the key), sent now or in a digest."""

    key = models.CharField(max_length=120, unique=True)
    urgency = models.CharField(max_length=10, choices=Urgency.choices)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    batch_key = models.CharField(max_length=120, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["sent_at", "urgency"], name="support_notice_pending")]

    def __str__(self) -> str:
        return self.text


# --- Promises made to the customer ------------------------------------------------------------------------

class CommitmentKind(models.TextChoices):
    EMAIL_WHEN_DONE = "email_when_done", "email them when it's done"
    PERSON_FINISHES = "person_finishes", "a person finishes it"
    PERSON_REPLIES = "person_replies", "a person replies"
    RETRY_AT = "retry_at", "try again at a set time"


class Commitment(models.Model):
    """Something we told the customer we would do: tracked on their case until it is kept (by whom, and how)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="commitments")
    kind = models.CharField(max_length=20, choices=CommitmentKind.choices)
    # The words the customer read, and where (the contact's reference, the page).
    text = models.CharField(max_length=500)
    made_in = models.CharField(max_length=120)
    # What keeping it is checked against: the account, the step, the payment.
    detail = models.JSONField(default=dict)
    made_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(null=True, blank=True)
    kept_at = models.DateTimeField(null=True, blank=True)
    # Empty when automation kept it.
    kept_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    kept_how = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["made_in", "kind"], name="one_commitment_per_promise")]
        indexes = [models.Index(fields=["case", "kept_at"], name="support_commitment_case")]

    def __str__(self) -> str:
        return f"{self.kind} on case {self.case_id}"

    @property
    def is_kept(self) -> bool:
        return self.kept_at is not None

    @property
    def is_overdue(self) -> bool:
        return self.kept_at is None and self.due_at is not None and self.due_at < timezone.now()


# --- Inbound email (support.inbound) ------------------------------------------------------------------------

class InboundKind(models.TextChoices):
    REPLY = "reply", "a customer's email"
    AUTO_REPLY = "auto_reply", "an automatic reply (out of office, vacation, list)"
    BOUNCE = "bounce", "a bounce (delivery failure report)"
    UNPARSEABLE = "unparseable", "malformed: kept as received"


class InboundThreading(models.TextChoices):
    ADDRESS = "address", "by the case's reply address"
    HEADERS = "headers", "by In-Reply-To/References"
    SENDER = "sender", "by the sender's address (a new message)"
    NONE = "none", "not on any case"


class InboundMessage(models.Model):
    """One email received through an ESP's inbound webhook, written before anything else is done with it (the
    intent), then threaded onto a case. The raw message is kept as it came; ``text`` in full, ``visible_text`` what
    the writer typed above the quote."""

    # Its Message-ID, or a hash of the raw message when it has none: the same mail delivered twice is one row.
    dedupe_key = models.CharField(max_length=200, unique=True)
    esp = models.CharField(max_length=30)
    kind = models.CharField(max_length=12, choices=InboundKind.choices, default=InboundKind.REPLY)
    message_id = models.CharField(max_length=300, blank=True, default="")
    in_reply_to = models.CharField(max_length=300, blank=True, default="")
    references = models.TextField(blank=True, default="")
    from_email = models.CharField(max_length=320, blank=True, default="")
    from_name = models.CharField(max_length=200, blank=True, default="")
    to = models.TextField(blank=True, default="")
    subject = models.CharField(max_length=300, blank=True, default="")
    text = models.TextField(blank=True, default="")
    visible_text = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")
    raw = models.BinaryField()
    # What was wrong with a malformed message (kind "unparseable"), as the webhook's answer said.
    problem = models.CharField(max_length=300, blank=True, default="")
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_messages")
    threaded_by = models.CharField(max_length=10, choices=InboundThreading.choices, blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now)
    threaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["case", "received_at"], name="support_inbound_case"),
            models.Index(fields=["received_at"], condition=Q(case__isnull=True), name="support_inbound_caseless"),
        ]

    def __str__(self) -> str:
        return f"inbound {self.kind} from {self.from_email or 'unknown'}"

    @property
    def is_automated(self) -> bool:
        return self.kind in (InboundKind.AUTO_REPLY, InboundKind.BOUNCE)


class InboundAttachment(models.Model):
    """A file that came with an inbound email: kept in the database (``content``) within the limits, or listed by
    name with why it was refused (``refused``), its content dropped."""

    message = models.ForeignKey(InboundMessage, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    content = models.BinaryField(null=True, blank=True)
    refused = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.content_type}, {self.size} bytes)"


class InboundWebhookToken(models.Model):
    """The one-time token of a signed inbound webhook (Mailgun signs only its timestamp and token, not the body): the
    first body it came with, by hash. The same token with another body is a captured signature reused, refused."""

    token = models.CharField(max_length=200, unique=True)
    body_sha256 = models.CharField(max_length=64)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"webhook token seen {self.seen_at:%Y-%m-%d %H:%M}"
