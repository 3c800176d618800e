import threading

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "backstop.billing"
    label = "billing"
    verbose_name = "Billing: checkout, orders and reconciliation"

    def ready(self) -> None:
        from django.conf import settings

        from backstop.billing import checks  # noqa: F401  (registers the payment settings checks)
        from backstop.billing.models import PURCHASE_QUEUE
        from backstop.runtime import registry

        registry.register_workflows("backstop.billing.workflows")
        # Only restarted purchases wait in this queue (the sweep's, reconciliation's): a buyer's own checkout starts
        # its workflow at once (checkout.hand_over_purchase), so the queue is looked at as often as the others.
        registry.register_queue(PURCHASE_QUEUE, concurrency=lambda: settings.SETUP_CONCURRENCY,
                                poll_seconds=lambda: settings.QUEUE_POLL_SECONDS)
        registry.register_loop("purchase-starter", _run_purchase_starter)
        registry.register_at_launch("reconcile-schedule", _apply_reconcile_schedule)
        registry.register_sweep("unstarted-purchases", _restart_unstarted_purchases)


def _apply_reconcile_schedule() -> None:
    # Imported at launch: the engine imports the workflow modules then, not every process at start-up.
    from backstop.billing.workflows import apply_reconcile_schedule

    apply_reconcile_schedule()


def _run_purchase_starter(stop: threading.Event) -> None:
    # Imported when the engine starts the loop: start-up need not load the checkout's services.
    from backstop.billing.checkout import run_purchase_starter

    run_purchase_starter(stop)


def _restart_unstarted_purchases(grace_seconds: float) -> int:
    # Imported when the sweep runs, as setup's: start-up need not load the checkout's services.
    from backstop.billing.checkout import restart_unstarted_purchases

    return restart_unstarted_purchases(grace_seconds=grace_seconds)
