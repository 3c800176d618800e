from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Workspace(models.Model):
    """The customer's workspace, recorded once the provisioner has created it (one per account)."""

    account = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workspace")
    name = models.CharField(max_length=200)
    external_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class LocalProvisionedWorkspace(models.Model):
    """The local fake provisioner's own records (stands in for the provisioning service's database)."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200)
    calls = models.IntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.idempotency_key


class Note(models.Model):
    """A note in the customer's workspace: a title and a body (the demo's stand-in for a product's own editor)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="notes")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    # Up by one with each change; a change names the version it was made on, so two tabs never overwrite silently.
    version = models.PositiveIntegerField(default=1)
    # The id the page gave the form that created the note, and the one that last changed it: a form sent again
    # (its answer lost in an outage) is the same note and the same change, not a second one.
    created_key = models.CharField(max_length=80, blank=True, default="")
    last_key = models.CharField(max_length=80, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "created_key"], condition=~models.Q(created_key=""),
                                               name="note_created_once")]

    def __str__(self) -> str:
        return self.title
