from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from backstop.incidents import audience, messages

register = template.Library()


@register.simple_tag
def status_link(page: str = "") -> SafeString:
    """The link to the public status page that the pages where customers wait or worry carry. ``page`` names a page
    that meets a capability (``audience.PAGE_CAPABILITIES``): the banner shows that capability's incidents there to
    every visitor."""
    if page and page not in audience.PAGE_CAPABILITIES:
        raise template.TemplateSyntaxError(f"status_link: unknown page {page!r}")
    return format_html('<p class="status-link" data-incident-page="{}"><a href="{}">{}</a></p>', page,
                       reverse("status"), messages.STATUS_LINK_TEXT)


@register.simple_tag(takes_context=True)
def incident_banner_script(context: template.Context) -> SafeString:
    """The banner's script, carrying the visitor's banner token (``audience``) for the header it sends."""
    request: Any = context.get("request")
    user = getattr(request, "user", None) if request is not None else context.get("user")
    return format_html('<script src="/status/banner.js" data-banner-token="{}" defer></script>',
                       audience.token_for(user))
