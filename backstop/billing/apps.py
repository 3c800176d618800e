from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "backstop.billing"
    label = "billing"
    verbose_name = "Billing: checkout, orders and reconciliation"

    def ready(self) -> None:
        from backstop.billing import checks  # noqa: F401  (registers the payment settings checks)
