"""The site itself as an app: what belongs to no one capability, registered once Django has loaded every app."""

from django.apps import AppConfig


class SiteConfig(AppConfig):
    name = "backstop"
    label = "site"
    verbose_name = "Backstop (site-wide)"

    def ready(self) -> None:
        from backstop import checks  # noqa: F401  (registers the site-wide system checks)
