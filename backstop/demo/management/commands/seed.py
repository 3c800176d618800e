"""`backstop seed --shape production --customers N [--seed S]`: production-shaped customers (demo/shapes.py)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backstop.demo.shapes import seed_production_shape


class Command(BaseCommand):
    help = ("Add production-shaped customers: case-only duplicates, NULLs, very long, right-to-left and emoji names, "
            "orphaned rows, accounts and payments in every state. For staging, preflights and tests; refused in "
            "production.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shape", choices=["production"], required=True, help="the kind of data to make")
        parser.add_argument("--customers", type=int, default=1000, help="how many customers (default 1000)")
        parser.add_argument("--seed", type=int, default=0, help="the same seed makes the same data")
        parser.add_argument("--without-orphans", action="store_true",
                            help="leave out the orphaned rows (on SQLite they make every migration fail its foreign "
                                 "key check)")
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.MODE == "production":
            raise CommandError("backstop seed writes made-up customers: it never runs with BACKSTOP_MODE=production")
        if options["customers"] < 1:
            raise CommandError("--customers must be at least 1")
        started = time.monotonic()
        report = seed_production_shape(customers=options["customers"], seed=options["seed"],
                                       using=options["database"], orphans=not options["without_orphans"])
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(f"seeded {options['customers']:,} production-shaped customers in "
                          f"{time.monotonic() - started:.1f} s")
