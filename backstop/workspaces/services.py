from __future__ import annotations

from django.db import IntegrityError, transaction

from backstop.workspaces.models import Workspace
from backstop.workspaces.providers import provisioner


def provision_workspace(*, account_id: int, name: str) -> Workspace:
    """Create the account's workspace with the provisioner and record it; safe to call again."""
    existing = Workspace.objects.filter(account_id=account_id).first()
    if existing is not None:
        return existing
    external_id = provisioner().provision(idempotency_key=f"workspace:{account_id}", name=name)
    try:
        with transaction.atomic():
            return Workspace.objects.create(account_id=account_id, name=name, external_id=external_id)
    except IntegrityError:  # a concurrent attempt recorded it first
        return Workspace.objects.get(account_id=account_id)


def workspace_exists_at_provisioner(*, external_id: str) -> bool:
    """Whether the provisioner knows this workspace id (support records a workspace made by hand only if it does).
    Raises ProviderError when the provisioner cannot say."""
    return provisioner().lookup(external_id=external_id)
