from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "backstop.notify"
    label = "notify"
    verbose_name = "Email and SMS"
