"""What /readyz says failed, one sentence per check, for the person paged at 3 a.m."""

from __future__ import annotations

DATABASE_UNREACHABLE = "The database did not answer: {error}."
NO_HEARTBEAT = ("No process running workflows has reported in for {seconds:.0f} s (dead after {limit:.0f} s): "
                "signups, emails and checkouts wait until a worker runs. Start `backstop worker`.")
NEVER_HEARTBEAT = ("No process running workflows has ever reported in: signups, emails and checkouts wait until a "
                   "worker runs. Start `backstop worker`.")
QUEUE_LAGGING = ("Queue {queue}: the oldest of {waiting} waiting workflows has waited {seconds:.0f} s "
                 "(more than {limit:.0f} s): the workers are behind or stuck.")
ENGINE_TABLES_UNREADABLE = "The workflow engine's tables could not be read: {error}."
METRICS_FORBIDDEN = "Metrics are for staff, or for a scraper with the metrics token (Authorization: Bearer ...)."
