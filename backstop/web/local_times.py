"""Times shown to a person are in their own time zone, which only their browser knows.

The server writes each time as ``<time datetime="...Z">`` with a UTC text that is right without any script; the script
in base.html (``local_times_script``) rewrites it in the browser's zone and language, and, for a time marked relative,
as "in 12 seconds" or "5 minutes ago" while it is within a day, kept current each second. Template builtins
(settings.TEMPLATES), so no page loads them.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

STYLES = ("absolute", "relative")


@register.filter
def local_time(moment: dt.datetime | None, style: str = "absolute") -> SafeString | str:
    """``{{ note.updated_at|local_time:"relative" }}``: the moment in the reader's zone (the script), UTC without it."""
    if moment is None:
        return ""
    if style not in STYLES:
        raise template.TemplateSyntaxError(f"local_time takes one of {STYLES}, not {style!r}")
    utc = moment.astimezone(dt.UTC)
    return format_html('<time datetime="{}" data-local-time="{}" title="{} UTC">{} UTC</time>',
                       utc.isoformat(timespec="seconds").replace("+00:00", "Z"), style,
                       utc.strftime("%Y-%m-%d %H:%M:%S"), f"{utc:%H:%M}, {utc.day} {utc:%b}")


# Relative words are used within this many seconds of now; beyond, the date and time read better.
RELATIVE_WITHIN_SECONDS = 24 * 3600
_SCRIPT = """<script>(() => {
  const absolute = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit", day: "numeric",
                                                       month: "short"});
  const full = new Intl.DateTimeFormat(undefined, {dateStyle: "full", timeStyle: "long"});
  const relative = new Intl.RelativeTimeFormat(undefined, {numeric: "auto"});
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  const show = () => document.querySelectorAll("time[data-local-time]").forEach((element) => {
    const at = new Date(element.dateTime);
    if (Number.isNaN(at.getTime())) return;
    element.title = full.format(at);
    const seconds = Math.round((at.getTime() - Date.now()) / 1000);
    if (element.dataset.localTime === "relative" && Math.abs(seconds) < WITHIN) {
      const [unit, size] = units.find(([, size]) => Math.abs(seconds) >= size) || ["second", 1];
      element.textContent = relative.format(Math.round(seconds / size), unit);
    } else {
      element.textContent = absolute.format(at);
    }
  });
  window.showLocalTimes = show;
  show();
  setInterval(show, 1000);
})();</script>"""


@register.simple_tag
def local_times_script() -> SafeString:
    """At the end of base.html: every ``<time data-local-time>`` on the page, and any a script adds later
    (``window.showLocalTimes()``), in the browser's own zone."""
    return mark_safe(_SCRIPT.replace("WITHIN", str(RELATIVE_WITHIN_SECONDS)))  # noqa: S308 (a constant)
