from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "backstop.workspaces"
    label = "workspaces"
