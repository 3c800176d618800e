from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    name = "backstop.runtime"
    label = "runtime"
    verbose_name = "Workflow runtime"

    def ready(self) -> None:
        from django.conf import settings

        from backstop.runtime import registry
        from backstop.runtime.logs import name_workflows_in_logs
        from backstop.runtime.probing import probe_failing_providers

        # The half-open probe on a timer: each app registers its providers' health calls (``register_probe``).
        registry.register_periodic("breaker-probes", probe_failing_providers,
                                   every_seconds=lambda: settings.BREAKER_PROBE_SECONDS)
        name_workflows_in_logs()
