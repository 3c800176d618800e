from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "backstop.support"
    label = "support"

    def ready(self) -> None:
        from django.conf import settings

        from backstop.runtime import registry

        registry.register_periodic("support-cycle", _run_support_cycle,
                                   every_seconds=lambda: settings.SUPPORT_CYCLE_SECONDS)


def _run_support_cycle() -> None:
    # Imported when the cycle first runs: start-up must not load the desk's automation into every process.
    from backstop.support.automation import run_support_cycle

    run_support_cycle()
