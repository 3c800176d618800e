from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "backstop.demo"
    label = "demo"
    verbose_name = "Demo: fault injection and local mailbox"
