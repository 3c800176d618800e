"""Accounts and their setup: every state is recorded, never a boolean."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from backstop.runtime.retrying import AttemptResult


class AccountState(models.TextChoices):
    SETTING_UP = "setting_up", "setting up"
    ACTIVE = "active", "active"
    NEEDS_ATTENTION = "needs_attention", "needs attention"
    DISABLED = "disabled", "disabled"


class StepName(models.TextChoices):
    WORKSPACE = "workspace", "Your workspace"
    WELCOME_EMAIL = "welcome_email", "Welcome email"


# The provider each setup step calls, as its circuit breaker is named.
STEP_PROVIDERS: dict[str, str] = {StepName.WORKSPACE: "workspace", StepName.WELCOME_EMAIL: "email"}


class StepStatus(models.TextChoices):
    PENDING = "pending", "not started yet"
    RETRYING = "retrying", "failed, trying again"
    WAITING = "waiting", "waiting for the provider to recover"
    DONE = "done", "done"
    FAILED = "failed", "stopped retrying, handed to support"


OPEN_STEP_STATUSES = (StepStatus.PENDING, StepStatus.RETRYING, StepStatus.WAITING)


# ``Account.setup_batch`` of an account whose setup (if any) no batch makes: signup alone asks for a batch.
OWN_SETUP_WORKFLOW = "own-workflow"


class AccountManager(BaseUserManager["Account"]):
    def by_email_key(self, email_key: str) -> Account | None:
        if "\x00" in email_key:  # never part of an address, and PostgreSQL refuses it even in a query
            return None
        return self.filter(email_key=email_key).first()

    def signed_in(self, user: Any) -> Account:
        """The full account behind ``request.user`` (a view only gets here once signed in)."""
        return self.get(pk=user.pk)

    def awaiting_setup_batch(self) -> models.QuerySet[Account]:
        """Waiting for a setup batch and due (oldest first): just signed up, or back from a batch that found a
        provider's breaker open and whose next look has come."""
        return self.filter(setup_batch="").exclude(setup_steps__next_attempt_at__gt=timezone.now()).order_by("pk")

    def with_open_setup_since(self, moment: dt.datetime) -> models.QuerySet[Account]:
        """Accounts with a setup step still open and untouched since ``moment``."""
        return self.filter(
            setup_steps__status__in=OPEN_STEP_STATUSES, setup_steps__updated_at__lt=moment
        ).exclude(state=AccountState.DISABLED).distinct()


class Account(AbstractBaseUser, PermissionsMixin):
    email = models.CharField(max_length=254)
    # Case-folded, NFKC-normalised email: the database refuses two accounts for one address.
    email_key = models.CharField(max_length=254, unique=True)
    name = models.CharField(max_length=150)
    company = models.CharField(max_length=150)
    phone = models.CharField(max_length=20, blank=True, default="")
    state = models.CharField(max_length=20, choices=AccountState.choices, default=AccountState.SETTING_UP)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    setup_run = models.IntegerField(default=1)
    # Signup sets "" (waiting for a setup batch); the batch that claims the account writes its workflow id there.
    setup_batch = models.CharField(max_length=64, blank=True, default=OWN_SETUP_WORKFLOW, db_index=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)

    objects = AccountManager()

    USERNAME_FIELD = "email_key"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email", "name", "company"]

    def __str__(self) -> str:
        return self.email

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.state != AccountState.DISABLED

    @property
    def setup_workflow_id(self) -> str:
        return setup_workflow_id(self.pk, self.setup_run)

    @property
    def setup_batch_id(self) -> str:
        """The workflow id of the setup batch that claimed this account; "" when none has (or none will)."""
        return "" if self.setup_batch == OWN_SETUP_WORKFLOW else self.setup_batch

    def verify_email(self) -> bool:
        """Mark the email verified; False when it already was."""
        return bool(
            Account.objects.filter(pk=self.pk, email_verified_at__isnull=True).update(email_verified_at=timezone.now())
        )


def setup_workflow_id(account_id: int, run: int) -> str:
    return f"setup:{account_id}:{run}"


class SetupStep(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="setup_steps")
    name = models.CharField(max_length=20, choices=StepName.choices)
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.IntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # "Try again now" was pressed after this step's last attempt began: the attempt that starts next clears it. A run
    # that ends out of budget with it set starts the next run instead of giving up (the press landed while the final
    # attempt was in flight, when the run had no more look at its messages).
    retry_requested = models.BooleanField(default=False, db_default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="one_row_per_setup_step")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name}: {self.status}"

    def was_delayed(self) -> bool:
        """Tried before, or held back by its provider's breaker: not done at its first look (read before an attempt)."""
        return self.attempts > 0 or self.status != StepStatus.PENDING

    def result_so_far(self) -> AttemptResult:
        """The step's recorded outcome as the retry loop takes it, due now (see ``retry_until_done``)."""
        status: Literal["done", "failed", "waiting"] = (
            "done" if self.status == StepStatus.DONE else "waiting" if self.status == StepStatus.WAITING else "failed"
        )
        return {"status": status, "retry_in": 0.0, "error": self.last_error}


class AccountEvent(models.Model):
    """The account's timeline, in plain words (setup attempts, sign-ins, codes sent)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40)
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "created_at"])]

    def __str__(self) -> str:
        return self.text


class VerificationCode(models.Model):
    """A one-time code sent by SMS and email, and the sign-in link sent with it by email; only their hashes are
    stored. Using either uses both."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    # SHA-256 of the link's random token (32 bytes): unguessable, so it is looked up directly and never rate-limited.
    link_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    # ``devices.hash_code_browser`` of the browser that asked for the code ("" when none did: a code sent to the
    # signed-in owner from an API client without cookies). Typed there, the code has tries of its own.
    browser_hash = models.CharField(max_length=64, blank=True, default="", db_default="")
    expires_at = models.DateTimeField()
    tries = models.IntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"code for {self.account_id} until {self.expires_at:%H:%M}"


class EmailKeyCollision(models.Model):
    """A row the change of the email key left for a person: under the new key it would belong to another customer
    (or to two), so it was not linked to anyone by that key. Listed by ``backstop email_key_collisions``."""

    found_at = models.DateTimeField(default=timezone.now)
    # Which row: "accounts.Account", "billing.Order"... and its primary key.
    table = models.CharField(max_length=60)
    row_id = models.BigIntegerField()
    email = models.CharField(max_length=254)
    old_key = models.CharField(max_length=254)
    new_key = models.CharField(max_length=254)
    # The accounts the row could belong to: a person decides which, if any.
    account_ids = models.JSONField(default=list)
    what_was_done = models.CharField(max_length=300)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["table", "row_id", "new_key"], name="one_report_per_row")]

    def __str__(self) -> str:
        return f"{self.table} {self.row_id} ({self.email}): {self.what_was_done}"


class DetailsChange(models.Model):
    """Details typed at a same-password signup that differ from the account's: kept aside until the owner confirms
    them. A new phone is applied only with the code sent to it, so codes never start going to a mistyped number."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="details_changes")
    name = models.CharField(max_length=150)
    company = models.CharField(max_length=150)
    phone = models.CharField(max_length=32)
    # The keyed hash of the code sent by SMS to ``phone`` (empty when the phone is unchanged).
    code_hash = models.CharField(max_length=64, blank=True, default="")
    tries = models.IntegerField(default=0)
    expires_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"details change for {self.account_id}"
