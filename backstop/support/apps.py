from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "backstop.support"
    label = "support"
