"""``{% draft "kind" id %}`` inside a ``<form>`` tag opts its text fields into drafts; ``{% drafts_assets %}`` (once,
in base.html, after the content) loads the script on the pages that use one."""

from __future__ import annotations

from typing import Any

from django import template
from django.middleware.csrf import get_token
from django.utils.html import format_html, json_script
from django.utils.safestring import SafeString, mark_safe

from backstop.drafts.messages import browser_texts
from backstop.drafts.owners import draft_owner, is_draft_page, mark_draft_page, owner_scope
from backstop.drafts.services import check_surface

register = template.Library()

SCRIPT_URL = "/drafts/drafts.js"
WORKER_URL = "/drafts-sw.js"
API_URL = "/api/drafts/"

STYLE = """<style>
.draft-status { color: #4a5366; font-size: .9rem; margin: .4rem 0 0; min-height: 1.2em; }
.draft-status[data-state=offline] { color: #8a5a00; } .draft-status[data-state=error] { color: #b3261e; }
.draft-panel { background: #fff6dd; border-left: 4px solid #c98a00; padding: .7rem 1rem; margin: .7rem 0; }
.draft-panel.problem { background: #fdecea; border-color: #b3261e; }
.draft-panel button { margin: .5rem .5rem 0 0; }
.draft-versions { display: grid; grid-template-columns: 1fr 1fr; gap: .8rem; }
.draft-versions textarea { width: 100%; box-sizing: border-box; min-height: 6rem; font: inherit; }
.draft-excerpt { margin: .3rem 0; padding-left: .8rem; border-left: 3px solid #d8c48f; white-space: pre-line; }
form[data-draft] button:disabled { opacity: .55; cursor: default; }
</style>"""


@register.simple_tag(takes_context=True)
def draft(context: dict[str, Any], kind: str, *parts: Any) -> SafeString:
    """The form's attributes: which draft it is (``kind:part``) and whose."""
    request = context["request"]
    surface = check_surface(":".join([kind, *(str(part) for part in parts)]))
    mark_draft_page(request)
    return format_html('data-draft="{}" data-draft-scope="{}"', surface,
                       owner_scope(draft_owner(request, create=True)))


@register.simple_tag(takes_context=True)
def drafts_assets(context: dict[str, Any]) -> SafeString:
    request = context.get("request")
    if request is None or not is_draft_page(request):
        return mark_safe("")
    config = {"texts": browser_texts(), "api": API_URL, "worker": WORKER_URL, "csrf": get_token(request),
              "scope": owner_scope(draft_owner(request))}
    return format_html('{}{}<script src="{}" defer></script>', mark_safe(STYLE),  # noqa: S308 (a constant)
                       json_script(config, "backstop-drafts-config"), SCRIPT_URL)
