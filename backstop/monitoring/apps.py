from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "backstop.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring: liveness, readiness and metrics"

    def ready(self) -> None:
        from backstop.monitoring import checks  # noqa: F401  (registers the metrics token check)
        from backstop.monitoring.metrics import register_collectors

        register_collectors()
