"""Every "write to us" a page says is a link to the contact page (prefilled with the address when we know it): a
customer told to write to us at a dead end is never left to find out where.

The phrases are one pattern here, used by the filter for pages drawn on the server and, through the
``contact_links_script`` tag in base.html, for texts a page's script puts in later (setup and checkout state). Both are
template builtins (settings.TEMPLATES), so no page loads them.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# How the catalogues send someone to us; matched case-insensitively, the words kept as written.
CONTACT_PHRASES = re.compile(r"\b(write to us|write to support|contact us|contact support|get in touch)\b",
                             re.IGNORECASE)


def contact_url(*, email: str = "") -> str:
    """The contact page, its address field filled in with ``email`` when we know it."""
    query = urlencode({"email": email.strip()[:254]}) if email.strip() else ""
    return reverse("support-contact") + (f"?{query}" if query else "")


@register.filter(is_safe=True)
def contact_links(text: object, email: str = "") -> SafeString:
    """The text escaped once, each phrase in CONTACT_PHRASES a link to the contact page."""
    escaped = str(conditional_escape(str(text)))  # str() keeps a SafeString safe
    href = contact_url(email=str(email or ""))
    return mark_safe(CONTACT_PHRASES.sub(  # noqa: S308 (escaped above; the link is built by format_html)
        lambda match: str(format_html('<a href="{}" class="contact-link">{}</a>', href, match.group(1))), escaped))


@register.filter(is_safe=True)
def email_contact_links(text: object) -> SafeString:
    """For an email's HTML part: the same links, to the site's full address (a mail client has no site to be relative
    to), without an address filled in (the email went to it; the contact page asks)."""
    escaped = str(conditional_escape(str(text)))
    href = f"{settings.BASE_URL.rstrip('/')}{contact_url()}"
    return mark_safe(CONTACT_PHRASES.sub(  # noqa: S308 (escaped above; the link is built by format_html)
        lambda match: str(format_html('<a href="{}">{}</a>', href, match.group(1))), escaped))


@register.simple_tag
def contact_links_script() -> SafeString:
    """``withContactLinks(text)``: the same links as nodes, for a script that replaces a text the server drew."""
    pattern = json.dumps(CONTACT_PHRASES.pattern.replace("\\b", ""))
    return format_html(
        "<script>window.withContactLinks = (text) => String(text).split(new RegExp({}, 'i')).filter(p => p !== "
        "undefined).map((part, i) => {{ if (i % 2 === 0) return document.createTextNode(part); const a = "
        "document.createElement('a'); a.href = {}; a.className = 'contact-link'; a.textContent = part; return a; }});"
        "</script>", mark_safe(pattern), mark_safe(json.dumps(contact_url())))  # noqa: S308 (json of constants)
