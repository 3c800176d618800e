"""A draft: what one person typed into one editable surface, kept on the server until it is sent or grows old."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Draft(models.Model):
    """The latest text of one surface (``desk-reply:42``, ``contact``, ``note:7``) for one owner.

    ``owner`` is ``user:<account id>`` for a signed-in person and ``anon:<id>`` for a visitor, the id coming from a
    signed cookie: a draft is only ever looked up by the owner the request proves, never by its own id.
    ``version`` goes up by one with every save; a save names the version it was typed on (optimistic concurrency).
    """

    owner = models.CharField(max_length=80)
    surface = models.CharField(max_length=100)
    fields = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    # The browser tab that wrote this version (a random id the page makes), so a page can tell "you, in this tab"
    # from "another tab or device".
    device = models.CharField(max_length=64, blank=True, default="")
    # The id the browser gave the save that wrote this version: the same save sent again (its answer lost) is
    # answered with this version and not applied again.
    last_save_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "surface"], name="draft_one_per_owner_surface")]

    def __str__(self) -> str:
        return f"{self.owner} {self.surface} v{self.version}"
