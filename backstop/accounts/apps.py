from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "backstop.accounts"
    label = "accounts"
