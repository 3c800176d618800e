from django.apps import AppConfig


class PreflightConfig(AppConfig):
    name = "backstop.preflight"
    label = "preflight"
