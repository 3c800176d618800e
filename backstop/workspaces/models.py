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
