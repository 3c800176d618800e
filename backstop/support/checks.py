"""The desk's search without its trigram index is a database check (`backstop check --database default`, and
every `migrate`): it still works, by a scan, so it warns instead of refusing to start."""

from __future__ import annotations

import re
from typing import Any

from django.core.checks import Error, Tags, Warning, register
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


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@register()
def check_inbound_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The reply addresses' domain must be a domain name (a typo makes every reply address undeliverable), and the
    attachment limits must fit inside each other."""
    from django.conf import settings

    problems: list[Any] = []
    if not _DOMAIN.match(settings.INBOUND_DOMAIN):
        problems.append(Error(messages.INBOUND_DOMAIN_INVALID.format(value=settings.INBOUND_DOMAIN),
                              hint=messages.INBOUND_DOMAIN_HINT, id="backstop.E210"))
    if not (settings.INBOUND_ATTACHMENT_MAX_BYTES <= settings.INBOUND_ATTACHMENTS_MAX_TOTAL_BYTES
            <= settings.INBOUND_MAX_BODY_BYTES):
        problems.append(Error(messages.INBOUND_LIMITS_INVALID, id="backstop.E211"))
    return problems
