from django.apps import AppConfig


class AttentionConfig(AppConfig):
    name = "backstop.attention"
    label = "attention"
