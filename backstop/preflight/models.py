"""What the deploy guard reads: each preflight run of a migration plan, and each time the guard was overridden."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

# The key of ``PreflightRun.report`` naming the --source a run copied instead of the database it is saved in; absent
# when it copied that database itself, the only kind of run the deploy guard counts.
OTHER_SOURCE_KEY = "source"


class PreflightRun(models.Model):
    """One ``backstop preflight`` of a plan (the migrations pending on the production database) on a copy of it."""

    # ``plan.plan_fingerprint``: the plan's migrations and the text of each, so an edited migration is a new plan.
    plan_fingerprint = models.CharField(max_length=64, db_index=True)
    plan = models.JSONField(default=list)  # ["app.0007_name", ...] in the order they apply
    vendor = models.CharField(max_length=20)  # sqlite, postgresql
    # When the copy's data was read from production: the guard trusts a pass only on data this recent.
    data_taken_at = models.DateTimeField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    passed = models.BooleanField(default=False)
    report = models.JSONField(default=dict)  # per migration: applied or failed, seconds, locks, offending rows

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"preflight {self.plan_fingerprint[:12]}: {'passed' if self.passed else 'failed'}"


class GuardOverride(models.Model):
    """``backstop migrate --force --reason ...``: a plan applied without a recent passing preflight, and why."""

    plan_fingerprint = models.CharField(max_length=64)
    plan = models.JSONField(default=list)
    reason = models.TextField()
    by = models.CharField(max_length=150)  # the operating-system user who ran the command
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"override {self.plan_fingerprint[:12]} by {self.by}"
