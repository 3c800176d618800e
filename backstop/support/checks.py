"""The desk's search without its trigram index is a database check (`backstop check --database default`, and
every `migrate`): it still works, by a scan, so it warns instead of refusing to start."""

from __future__ import annotations

from typing import Any

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError

from backstop.support import messages


@register(Tags.database)
def check_search_indexes(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    if not databases or "default" not in databases:
        return []
    from backstop.support.search import trigram_index_missing

    try:
        missing = trigram_index_missing()
    except DatabaseError:  # not migrated yet: migrate itself says so
        return []
    if missing:
        return [Warning(messages.SEARCH_TRIGRAM_MISSING, hint=messages.SEARCH_TRIGRAM_HINT, id="backstop.W201")]
    return []
