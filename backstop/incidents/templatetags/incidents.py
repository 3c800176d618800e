from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from backstop.incidents import messages

register = template.Library()


@register.simple_tag
def status_link() -> SafeString:
    """The link to the public status page that the pages where customers wait or worry carry."""
    return format_html('<p class="status-link"><a href="{}">{}</a></p>', reverse("status"), messages.STATUS_LINK_TEXT)
