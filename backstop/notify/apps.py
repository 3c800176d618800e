from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "backstop.notify"
    label = "notify"
    verbose_name = "Email and SMS"

    def ready(self) -> None:
        from django.conf import settings

        from backstop.notify.models import DELIVERY_QUEUE
        from backstop.runtime import registry

        registry.register_workflows("backstop.notify.workflows")
        registry.register_queue(DELIVERY_QUEUE, concurrency=lambda: settings.SETUP_CONCURRENCY,
                                poll_seconds=lambda: settings.QUEUE_POLL_SECONDS)
        # Its safety net is the guarded operation's own sweep ("deliver"), registered when the engine imports the
        # workflow module above.
