"""The audit's before/after as the lines of what changed (backstop.lib.diffs), for the case page."""

from __future__ import annotations

from django import template

from backstop.lib.diffs import Change, changes
from backstop.support.models import SupportAction

register = template.Library()


@register.filter
def audit_changes(action: SupportAction) -> list[Change]:
    return changes(action.before, action.after) if action.finished_at else []
