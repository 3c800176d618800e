from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "backstop.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.conf import settings

        from backstop.accounts import dispatcher
        from backstop.runtime import registry

        registry.register_workflows("backstop.accounts.workflows")
        registry.register_workflows("backstop.accounts.recovery")  # a code asked for by address, after the answer
        registry.register_queue(dispatcher.SETUP_QUEUE, concurrency=lambda: settings.SETUP_CONCURRENCY,
                                poll_seconds=lambda: settings.QUEUE_POLL_SECONDS)
        registry.register_queue(dispatcher.SETUP_BATCH_QUEUE, concurrency=lambda: dispatcher.SETUP_BATCHES_AT_ONCE,
                                poll_seconds=lambda: settings.QUEUE_POLL_SECONDS)
        registry.register_loop(dispatcher.DISPATCHER_LOOP, dispatcher.dispatch_first_setups)
        registry.register_sweep("stalled-setups", _restart_stalled_setups)
        # A provider back (a probe's or a customer's call succeeded): every setup waiting on it tries again now,
        # those that spent their budget on it included.
        registry.register_recovery_hook("setup", _retry_setups_waiting_on)


def _restart_stalled_setups(grace_seconds: float) -> int:
    # Imported when the sweep runs: start-up must not load the setup code (and the engine) into every process.
    from backstop.accounts.setup import restart_stalled_setups

    return restart_stalled_setups(grace_seconds=grace_seconds)


def _retry_setups_waiting_on(provider: str) -> None:
    from backstop.accounts.setup import retry_setups_waiting_on

    retry_setups_waiting_on(provider=provider)
