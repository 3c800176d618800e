from django.apps import AppConfig


class RateLimitsConfig(AppConfig):
    name = "backstop.ratelimits"
    label = "ratelimits"
