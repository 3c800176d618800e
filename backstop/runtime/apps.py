from django.apps import AppConfig


class RuntimeConfig(AppConfig):
    name = "backstop.runtime"
    label = "runtime"
    verbose_name = "Workflow runtime"
