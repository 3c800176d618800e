"""Fixed-window counters in the database, so every web process shares one view of abuse limits."""

from __future__ import annotations

import datetime as dt
import math

from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone


class CounterManager(models.Manager["Counter"]):
    def hit(self, key: str, *, limit: int, window_seconds: int) -> float:
        """Count one hit; 0 when within ``limit``, otherwise seconds until the window ends."""
        now = timezone.now()
        start_ts = math.floor(now.timestamp() / window_seconds) * window_seconds
        window_start = dt.datetime.fromtimestamp(start_ts, tz=dt.UTC)
        if not self.filter(key=key, window_start=window_start).update(hits=F("hits") + 1):
            try:
                with transaction.atomic():
                    self.create(key=key, window_start=window_start, hits=1)
            except IntegrityError:  # another process created it first
                self.filter(key=key, window_start=window_start).update(hits=F("hits") + 1)
        hits = self.filter(key=key, window_start=window_start).values_list("hits", flat=True).first() or 0
        if hits <= limit:
            return 0.0
        return max(1.0, start_ts + window_seconds - now.timestamp())

    def spent(self, key: str, *, limit: int, window_seconds: int) -> float:
        """Count nothing: 0 while ``key`` has fewer than ``limit`` hits this window, otherwise seconds until it ends."""
        now = timezone.now()
        start_ts = math.floor(now.timestamp() / window_seconds) * window_seconds
        window_start = dt.datetime.fromtimestamp(start_ts, tz=dt.UTC)
        hits = self.filter(key=key, window_start=window_start).values_list("hits", flat=True).first() or 0
        if hits < limit:
            return 0.0
        return max(1.0, start_ts + window_seconds - now.timestamp())

    def claim(self, key: str, *, limit: int, window_seconds: int) -> bool:
        """Take one of ``limit`` hits this window, exactly: parallel claims never take more than ``limit`` in all."""
        now = timezone.now()
        start_ts = math.floor(now.timestamp() / window_seconds) * window_seconds
        window_start = dt.datetime.fromtimestamp(start_ts, tz=dt.UTC)
        if limit < 1:
            return False
        # Conditional UPDATE: the row is only incremented while under the limit, so the count is the claims granted.
        if self.filter(key=key, window_start=window_start, hits__lt=limit).update(hits=F("hits") + 1):
            return True
        if self.filter(key=key, window_start=window_start).exists():
            return False
        try:
            with transaction.atomic():
                self.create(key=key, window_start=window_start, hits=1)
            return True
        except IntegrityError:  # another claim created it first
            return bool(self.filter(key=key, window_start=window_start, hits__lt=limit).update(hits=F("hits") + 1))

    def forget_before(self, moment: dt.datetime) -> int:
        deleted, _ = self.filter(window_start__lt=moment).delete()
        return deleted


class Counter(models.Model):
    key = models.CharField(max_length=200)
    window_start = models.DateTimeField()
    hits = models.IntegerField(default=0)

    objects = CounterManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="one_counter_per_window")]

    def __str__(self) -> str:
        return f"{self.key}@{self.window_start:%H:%M}: {self.hits}"
