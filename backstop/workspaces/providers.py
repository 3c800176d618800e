"""Workspace provisioner adapters: an HTTP service in production, a local fake in the demo."""

from __future__ import annotations

import re
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from backstop.lib.adapters import wrap_adapter
from backstop.lib.errors import ProviderError, ProviderTimeout, connection_failure, throttled
from backstop.workspaces.models import LocalProvisionedWorkspace


class Provisioner(Protocol):
    def provision(self, *, idempotency_key: str, name: str) -> str:
        """Create the workspace (or return the one this key already created); returns its id."""
        ...

    def probe(self) -> None:
        """A cheap health call that creates nothing; raises ProviderError when the provisioner does not work."""
        ...

    def lookup(self, *, external_id: str) -> bool:
        """Whether the provisioner has a workspace with this id (made by us or by a person in its console)."""
        ...


class HttpProvisioner:
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call to the workspace service with our token; a timeout or an unreachable service is a provider error."""
        headers = {"Authorization": f"Bearer {settings.WORKSPACE_PROVISIONER_TOKEN}", **kwargs.pop("headers", {})}
        try:
            response = httpx.request(method, f"{settings.WORKSPACE_PROVISIONER_URL.rstrip('/')}{path}",
                                     headers=headers, timeout=settings.WORKSPACE_TIMEOUT, **kwargs)
        except httpx.TimeoutException as error:
            raise ProviderTimeout(
                f"the workspace service did not answer within {settings.WORKSPACE_TIMEOUT:g} seconds"
            ) from error
        except httpx.HTTPError as error:
            raise ProviderError(f"could not reach the workspace service ({connection_failure(error)})") from error
        # 429 or 503 with Retry-After: the service said when to come back; the breaker holds every call until then.
        if held := throttled(response.status_code, response.headers.get("Retry-After"),
                             f"the workspace service asked us to wait (HTTP {response.status_code})"):
            raise held
        return response

    def lookup(self, *, external_id: str) -> bool:
        response = self._request("GET", f"/workspaces/{quote(external_id, safe='')}")
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise ProviderError(f"the workspace service refused the request (HTTP {response.status_code})")
        return True

    def provision(self, *, idempotency_key: str, name: str) -> str:
        response = self._request("POST", "/workspaces", json={"name": name},
                                 headers={"Idempotency-Key": idempotency_key})
        if response.status_code >= 400:
            raise ProviderError(f"the workspace service refused the request (HTTP {response.status_code})")
        try:
            return str(response.json()["id"])
        except (ValueError, KeyError, TypeError) as error:
            # A garbled answer must be retried like any other failure, not crash the setup workflow.
            raise ProviderError("the workspace service sent an answer without a workspace id") from error

    def probe(self) -> None:
        """``GET /health``: the service's health endpoint, with our token, so a revoked token counts as down."""
        response = self._request("GET", "/health")
        if response.status_code >= 400:
            raise ProviderError(f"the workspace service's health check failed (HTTP {response.status_code})")


class LocalProvisioner:
    def lookup(self, *, external_id: str) -> bool:
        # The fake's ids are ws_ and its record's number (as provision makes them); anything else it never made.
        number = re.fullmatch(r"ws_(\d{8})", external_id.strip())
        return number is not None and LocalProvisionedWorkspace.objects.filter(pk=int(number.group(1))).exists()

    def provision(self, *, idempotency_key: str, name: str) -> str:
        # The first call for a key creates the workspace; a repeated call (same key) counts and returns it.
        try:
            with transaction.atomic():
                record = LocalProvisionedWorkspace.objects.create(idempotency_key=idempotency_key, name=name)
        except IntegrityError:
            LocalProvisionedWorkspace.objects.filter(idempotency_key=idempotency_key).update(calls=F("calls") + 1)
            record = LocalProvisionedWorkspace.objects.get(idempotency_key=idempotency_key)
        return f"ws_{record.pk:08d}"

    def probe(self) -> None:
        """The local fake is a table of ours: it works whenever the database does (faults wrap this call too)."""


def provisioner() -> Provisioner:
    adapter = HttpProvisioner() if settings.WORKSPACE_PROVIDER == "http" else LocalProvisioner()
    return wrap_adapter("workspace", adapter, timeout=settings.WORKSPACE_TIMEOUT)
