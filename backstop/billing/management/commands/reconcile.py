"""`backstop reconcile [--full] [--since ISO]`: check our orders against the processor's payments."""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from backstop.billing.reconcile import reconcile_payments

# 0: the books agree (whatever was missing was fixed). 1: this run found something only a person can settle
# (a payment matching no checkout, an order without a payment, a checkout still unsettled): it is on the desk.
# 2: it could not check everything (the processor failed, or the command was given wrong options).
EXIT_NEEDS_A_PERSON = 1
EXIT_NOT_CHECKED = 2


class ProgressBar:
    """One line on a terminal, redrawn at most 10 times a second: payments done, rate, how far back."""

    def __init__(self, stream: Any, *, since: dt.datetime | None, until: dt.datetime) -> None:
        self.stream = stream
        self.since = since
        self.until = until
        self.done = 0
        self.started = time.monotonic()
        self.drawn_at = 0.0

    def __call__(self, count: int, reached: dt.datetime | None) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.drawn_at < 0.1:
            return
        self.drawn_at = now
        rate = self.done / max(now - self.started, 1e-6)
        line = f"{self.done:>12,} payments  {rate:>9,.0f}/s"
        if reached is not None:
            line += f"  back to {reached:%Y-%m-%d %H:%M}"
            if self.since is not None and self.until > self.since:
                share = (self.until - reached) / (self.until - self.since)
                filled = int(30 * min(max(share, 0.0), 1.0))
                line = f"[{'#' * filled}{'.' * (30 - filled)}] {min(share, 1.0):4.0%} " + line
        self.stream.write("\r" + line)
        self.stream.flush()

    def finish(self) -> None:
        if self.done:
            self.stream.write("\n")


class Command(BaseCommand):
    help = "Reconcile processor payments with local orders (incremental from the stored watermark by default)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--full", action="store_true", help="check every payment, ignoring the watermark")
        parser.add_argument("--since", help="check payments created from this ISO date/time (UTC if no zone)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")

    def handle(self, *args: Any, **options: Any) -> None:
        since = None
        if options["since"]:
            since = parse_datetime(options["since"]) or _parse_date(options["since"])
            if since is None:
                raise CommandError(f"--since must be an ISO date or date-time, not {options['since']!r}",
                                   returncode=EXIT_NOT_CHECKED)
            if timezone.is_naive(since):
                since = since.replace(tzinfo=dt.UTC)
        if options["full"] and since is not None:
            raise CommandError("use either --full or --since, not both", returncode=EXIT_NOT_CHECKED)
        bar = None
        if sys.stderr.isatty() and not options["no_progress"]:
            bar = ProgressBar(sys.stderr, since=since, until=timezone.now())
        summary = reconcile_payments(actor="staff:reconcile-command", full=options["full"], since=since,
                                     progress=bar)
        if bar is not None:
            bar.finish()
        self.stdout.write("\n".join(summary.lines()))
        # A scheduler or a person running it by hand tells the outcomes apart by the exit status alone.
        if summary.problems:
            raise CommandError("reconciliation could not check everything (see the problems above)",
                               returncode=EXIT_NOT_CHECKED)
        if needs := summary.needs_a_person():
            raise CommandError(f"needs a person: {', '.join(needs)} (on the support desk)",
                               returncode=EXIT_NEEDS_A_PERSON)


def _parse_date(text: str) -> dt.datetime | None:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
