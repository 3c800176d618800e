from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "backstop.workspaces"
    label = "workspaces"

    def ready(self) -> None:
        from backstop.runtime import registry

        # While the provisioner's breaker is not healthy, the runtime checks it on a timer with this health call.
        registry.register_probe("workspace", _probe_provisioner)


def _probe_provisioner() -> None:
    from backstop.workspaces.providers import provisioner

    provisioner().probe()
