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
        registry.register_sweep("stranded-messages", _hand_on_stranded_messages)


def _hand_on_stranded_messages(grace_seconds: float) -> int:
    # Imported when the sweep runs: start-up must not load the delivery code (and the engine) into every process.
    from backstop.notify.services import hand_on_stranded_messages

    return hand_on_stranded_messages(grace_seconds=grace_seconds)
