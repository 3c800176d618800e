import logging
import threading

from django.apps import AppConfig

log = logging.getLogger(__name__)


class IncidentsConfig(AppConfig):
    name = "backstop.incidents"
    label = "incidents"

    def ready(self) -> None:
        from django.conf import settings

        from backstop.incidents import checks  # noqa: F401  (registers the incident settings checks)
        from backstop.runtime import registry

        # An incident opens within one probe interval of its breaker opening, and follows it to recovery.
        # Amends run in a workflow of their own (incidents.workflows), on a queue of their own.
        registry.register_workflows("backstop.incidents.workflows")
        registry.register_queue("incidents", concurrency=lambda: 2, poll_seconds=lambda: settings.QUEUE_POLL_SECONDS)
        # On a thread of its own, not the supervisor's: the desk's cycle there can take seconds under load.
        registry.register_loop("incidents-follow-breakers", _follow_breakers)
        registry.register_recovery_hook("incidents", _on_recovery)
        # The 30-day review of a post-mortem's action items: a reminder, once.
        registry.register_periodic("incident-review-reminders", _remind, every_seconds=lambda: 3600.0)


def _watch() -> None:
    # Imported when first run: start-up must not load detection into every process.
    from backstop.incidents.detection import watch_breakers

    watch_breakers()


def _follow_breakers(stop: threading.Event) -> None:
    """Every BREAKER_PROBE_SECONDS: an incident opens within one probe interval of its breaker opening."""
    from django.conf import settings

    from backstop.runtime import registry
    from backstop.runtime.engine import release_db_connections

    cycle = registry.cycle_lock("incidents-follow-breakers")
    while not stop.wait(settings.BREAKER_PROBE_SECONDS):
        with cycle:
            if stop.is_set():  # the engine stopped while a hold kept this cycle waiting
                return
            try:
                _watch()
            except Exception:  # the loop must outlive a database hiccup: the next interval tries again
                log.exception("following the breakers failed; trying again next interval")
            finally:
                release_db_connections()


def _on_recovery(provider: str) -> None:
    _watch()


def _remind() -> None:
    from backstop.incidents.followup import send_review_reminders

    send_review_reminders()
