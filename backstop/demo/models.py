from __future__ import annotations

from django.db import models
from django.utils import timezone


class FaultMode(models.TextChoices):
    OK = "ok", "working"
    ERROR = "error", "answers with an error"
    TIMEOUT = "timeout", "hangs until the adapter's timeout"
    SLOW = "slow", "answers slowly"
    CRASH_AFTER_CHARGE = "crash_after_charge", "the server process dies right after the card is charged"


class FaultSettingManager(models.Manager["FaultSetting"]):
    def mode_of(self, provider: str) -> str:
        mode = self.filter(provider=provider).values_list("mode", flat=True).first()
        return mode or FaultMode.OK

    def set_modes(self, modes: dict[str, str]) -> None:
        for provider, mode in modes.items():
            self.update_or_create(provider=provider, defaults={"mode": mode, "updated_at": timezone.now()})

    def as_dict(self) -> dict[str, str]:
        return dict(self.values_list("provider", "mode"))


class FaultSetting(models.Model):
    """The injected behaviour of one provider, shared by the web server and the workers."""

    provider = models.CharField(primary_key=True, max_length=40)
    mode = models.CharField(max_length=20, choices=FaultMode.choices, default=FaultMode.OK)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = FaultSettingManager()

    def __str__(self) -> str:
        return f"{self.provider}={self.mode}"
