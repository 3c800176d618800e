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
        # While a channel's breaker is not healthy, the runtime checks it on a timer with these health calls, through
        # the same adapters (and so the same faults) as the messages.
        registry.register_probe("email", _probe_email)
        registry.register_probe("sms", _probe_sms)
        # Its safety net is the guarded operation's own sweep ("deliver"), registered when the engine imports the
        # workflow module above.


def _probe_email() -> None:
    from backstop.notify.providers import email_provider

    email_provider().probe()


def _probe_sms() -> None:
    from backstop.notify.providers import sms_provider

    sms_provider().probe()
