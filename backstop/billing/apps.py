from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "backstop.billing"
    label = "billing"
    verbose_name = "Billing: checkout, orders and reconciliation"

    def ready(self) -> None:
        from django.conf import settings

        from backstop.billing import checks  # noqa: F401  (registers the payment settings checks)
        from backstop.billing.models import PURCHASE_POLL_SECONDS, PURCHASE_QUEUE
        from backstop.runtime import registry

        registry.register_workflows("backstop.billing.workflows")
        registry.register_queue(PURCHASE_QUEUE, concurrency=lambda: settings.SETUP_CONCURRENCY,
                                poll_seconds=lambda: min(settings.QUEUE_POLL_SECONDS, PURCHASE_POLL_SECONDS))
        registry.register_at_launch("reconcile-schedule", _apply_reconcile_schedule)
        registry.register_sweep("unstarted-purchases", _restart_unstarted_purchases)


def _apply_reconcile_schedule() -> None:
    # Imported at launch: the engine imports the workflow modules then, not every process at start-up.
    from backstop.billing.workflows import apply_reconcile_schedule

    apply_reconcile_schedule()


def _restart_unstarted_purchases(grace_seconds: float) -> int:
    # Imported when the sweep runs, as setup's: start-up need not load the checkout's services.
    from backstop.billing.checkout import restart_unstarted_purchases

    return restart_unstarted_purchases(grace_seconds=grace_seconds)
