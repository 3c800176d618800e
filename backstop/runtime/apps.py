from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    name = "backstop.runtime"
    label = "runtime"
    verbose_name = "Workflow runtime"

    def ready(self) -> None:
        from backstop import checks  # noqa: F401  (registers the system checks)
