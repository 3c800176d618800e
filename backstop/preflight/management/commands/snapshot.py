"""`backstop snapshot [--sanitize] [--out PATH|DBNAME]`: a copy of the database for staging and the preflight."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from backstop.preflight.sanitize import take_snapshot


class Command(BaseCommand):
    help = ("Copy the database (SQLite: a new file; PostgreSQL: a new database on the same server) without blocking "
            "its writers; --sanitize masks every personal column of the copy (see backstop/preflight/sanitize.py).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sanitize", action="store_true",
                            help="mask emails, names, phones and free text in the copy (keyed: "
                                 "BACKSTOP_SNAPSHOT_SECRET, else a new random key per snapshot)")
        parser.add_argument("--out", default=None,
                            help="SQLite: the new file (default: snapshot-<time>.sqlite3 in the data directory); "
                                 "PostgreSQL: the new database's name (default: <database>_snapshot_<time>)")
        parser.add_argument("--database", default="default", help="the database to copy")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = take_snapshot(using=options["database"], target=options["out"], sanitize=options["sanitize"],
                                   progress=lambda line: self.stderr.write(line) if options["verbosity"] > 1 else None)
        except (FileExistsError, RuntimeError, ValueError) as error:
            raise CommandError(str(error)) from error
        what = "sanitized snapshot" if result.sanitized else "snapshot (NOT sanitized: it holds personal data)"
        self.stdout.write(f"{what}: {result.target} ({result.vendor}, data as of "
                          f"{result.data_taken_at:%Y-%m-%d %H:%M:%S} UTC, {result.masked_values} values masked)")
        self.stdout.write(f"try the pending plan on it: backstop preflight --source {_source(result.target, options)}")


def _source(target: str, options: dict[str, Any]) -> str:
    """What `backstop preflight --source` takes for the copy: the file, or the copy's URL (never with a password)."""
    config = connections[options["database"]].settings_dict
    if connections[options["database"]].vendor == "sqlite":
        return target
    host, port = config.get("HOST") or "localhost", config.get("PORT") or 5432
    return f"postgres://{config.get('USER') or ''}@{host}:{port}/{target}"
