"""`backstop email_key_collisions [--all]`: the rows the email key's change left for a person, one a line.

Each names the row, its address, the accounts it could belong to and what the migration did; a person decides whether
they are one customer (and merges them by hand) or two. Exits non-zero while any is unresolved, so a deploy script
can tell.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from backstop.accounts.models import EmailKeyCollision


class Command(BaseCommand):
    help = "List the rows the email key's change left for a person (accounts and billing rows two customers share)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="resolved ones too")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = EmailKeyCollision.objects.all()
        if not options["all"]:
            rows = rows.filter(resolved_at__isnull=True)
        count = 0
        for row in rows:
            count += 1
            accounts = ", ".join(f"account {pk}" for pk in row.account_ids) or "no account"
            state = f"resolved {row.resolved_at:%Y-%m-%d}" if row.resolved_at else "open"
            self.stdout.write(f"{row.pk}: {row.table} {row.row_id} <{row.email}> key {row.old_key} -> {row.new_key}; "
                              f"could be {accounts}; {row.what_was_done} [{state}]")
        unresolved = EmailKeyCollision.objects.filter(resolved_at__isnull=True).count()
        self.stdout.write(f"{count} listed, {unresolved} unresolved")
        if unresolved:
            raise SystemExit(1)
