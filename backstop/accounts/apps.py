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


def _restart_stalled_setups(grace_seconds: float) -> int:
    # Imported when the sweep runs: start-up must not load the setup code (and the engine) into every process.
    from backstop.accounts.setup import restart_stalled_setups

    return restart_stalled_setups(grace_seconds=grace_seconds)
