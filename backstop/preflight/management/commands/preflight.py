"""`backstop preflight [--source PATH_OR_URL] [--format table|markdown|json]`: try the pending plan on a copy.

Exit status: 0 the plan passed, 1 it failed (or the preflight could not run), 2 wrong usage.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backstop.preflight.copying import source_settings
from backstop.preflight.report import FORMATS, render
from backstop.preflight.runner import run_preflight

EXIT_FAILED = 1
EXIT_USAGE = 2


class ProgressBar:
    """One line on stderr, redrawn at most 10 times a second, only when stderr is a terminal or the copy is long."""

    STAGES = {"copy": "copying", "migrate": "migrating"}

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.drawn_at = 0.0
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if not finished and now - self.drawn_at < 0.1:
            return
        # A copy that ends within a second needs no bar; a longer one shows where it is.
        if not self.drawn and now - self.started < 1.0 and not self.stream.isatty():
            return
        self.drawn_at = now
        share = done / total if total else 1.0
        filled = int(30 * min(max(share, 0.0), 1.0))
        unit = f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB" if stage == "copy" else f"{done}/{total}"
        self.stream.write(f"\r{self.STAGES.get(stage, stage):<10} [{'#' * filled}{'.' * (30 - filled)}] "
                          f"{share:4.0%} {unit}   ")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


class Command(BaseCommand):
    help = "Run every pending migration on a copy of the database and report; exit 0 passed, 1 failed, 2 usage."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", default=None,
                            help="a SQLite file or PostgreSQL URL to copy instead of the database (e.g. a sanitized "
                                 "snapshot)")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, default="table")
        parser.add_argument("--database", default="default", help="the database whose pending plan is tried")

    def handle(self, *args: Any, source: str | None, fmt: str, database: str, **options: Any) -> None:
        try:
            source_settings(using=database, source=source)
        except (ValueError, KeyError) as error:  # a --source that is no database we can copy
            raise CommandError(str(error), returncode=EXIT_USAGE) from error
        bar = ProgressBar(sys.stderr)
        try:
            run = run_preflight(using=database, source=source, progress=bar)
        finally:
            bar.finish()
        self.stdout.write(render(run, fmt=fmt))
        if not run.passed:
            sys.exit(EXIT_FAILED)
