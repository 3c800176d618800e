"""Workspace provisioners: the local fake and the HTTP adapter are idempotent by key; failures are ProviderErrors."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connections

from backstop.accounts.models import Account
from backstop.demo.faults import WithFaults
from backstop.lib.errors import ProviderError, ProviderTimeout
from backstop.workspaces import services
from backstop.workspaces.models import LocalProvisionedWorkspace, Workspace
from backstop.workspaces.providers import HttpProvisioner, LocalProvisioner, provisioner
from conftest import StubApi, free_port


@pytest.fixture
def provisioner_service(settings: Any, stub_api: StubApi) -> StubApi:
    """The HTTP provisioner pointed at a stub that, like the real service, answers one id per idempotency key."""
    settings.WORKSPACE_PROVISIONER_URL = stub_api.url + "/"
    settings.WORKSPACE_PROVISIONER_TOKEN = "provisioner-token"
    settings.WORKSPACE_TIMEOUT = 0.3
    ids: dict[str, str] = {}

    def answer(request: dict[str, Any]) -> tuple[int, bytes]:
        key = request["headers"]["Idempotency-Key"]
        ids.setdefault(key, f"ws_remote_{len(ids) + 1}")
        return 201, json.dumps({"id": ids[key], "name": request["json"]["name"]}).encode()

    stub_api.reply = answer
    return stub_api


def new_account(email: str = "ann@example.com") -> Account:
    return Account.objects.create(email=email, email_key=email, name="Ann Lee", company="Acme",
                                  password=make_password(None))


@pytest.mark.django_db
def test_it_creates_one_local_workspace_per_key() -> None:
    first = LocalProvisioner().provision(idempotency_key="workspace:1", name="Acme")
    again = LocalProvisioner().provision(idempotency_key="workspace:1", name="Acme")
    other = LocalProvisioner().provision(idempotency_key="workspace:2", name="Globex")

    assert first == again != other
    assert first.startswith("ws_")
    record = LocalProvisionedWorkspace.objects.get(idempotency_key="workspace:1")
    assert (record.name, record.calls) == ("Acme", 2)
    assert LocalProvisionedWorkspace.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_local_workspace_when_the_same_key_arrives_concurrently() -> None:
    callers = 6
    start = threading.Barrier(callers)
    ids: list[str] = []

    def call() -> None:
        try:
            start.wait()
            ids.append(LocalProvisioner().provision(idempotency_key="workspace:9", name="Acme"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(ids) == callers
    assert len(set(ids)) == 1
    assert LocalProvisionedWorkspace.objects.get().calls == callers


@pytest.mark.django_db
def test_it_records_the_workspace_once_however_often_the_step_runs(settings: Any) -> None:
    settings.WORKSPACE_PROVIDER = "local"
    account = new_account()

    first = services.provision_workspace(account_id=account.pk, name="Acme")
    again = services.provision_workspace(account_id=account.pk, name="Acme")

    assert first.pk == again.pk
    assert Workspace.objects.get().external_id == first.external_id
    # The second call found the recorded workspace and did not ask the provisioner again.
    assert LocalProvisionedWorkspace.objects.get().calls == 1


def test_it_sends_the_idempotency_key_and_token_to_the_provisioning_service(provisioner_service: StubApi) -> None:
    first = HttpProvisioner().provision(idempotency_key="workspace:41", name="Acme")
    again = HttpProvisioner().provision(idempotency_key="workspace:41", name="Acme")
    other = HttpProvisioner().provision(idempotency_key="workspace:42", name="Globex")

    assert first == again == "ws_remote_1"
    assert other == "ws_remote_2"
    request = provisioner_service.requests[0]
    assert request["path"] == "/workspaces"
    assert request["headers"]["Idempotency-Key"] == "workspace:41"
    assert request["headers"]["Authorization"] == "Bearer provisioner-token"
    assert request["json"] == {"name": "Acme"}
    assert [r["headers"]["Idempotency-Key"] for r in provisioner_service.requests] == [
        "workspace:41", "workspace:41", "workspace:42"]


@pytest.mark.parametrize("status", [400, 409, 500, 503])
def test_it_reports_a_refusal_from_the_provisioning_service(provisioner_service: StubApi, status: int) -> None:
    provisioner_service.reply = lambda request: (status, b'{"error": "nope"}')

    with pytest.raises(ProviderError) as raised:
        HttpProvisioner().provision(idempotency_key="workspace:1", name="Acme")

    assert str(raised.value) == f"the workspace service refused the request (HTTP {status})"


@pytest.mark.parametrize("body", [b"<html>gateway</html>", b'{"name": "Acme"}', b"[1, 2]"])
def test_it_reports_an_answer_without_a_workspace_id(provisioner_service: StubApi, body: bytes) -> None:
    provisioner_service.reply = lambda request: (200, body)

    with pytest.raises(ProviderError) as raised:
        HttpProvisioner().provision(idempotency_key="workspace:1", name="Acme")

    assert str(raised.value) == "the workspace service sent an answer without a workspace id"


def test_it_reports_a_slow_provisioning_service_as_a_timeout(provisioner_service: StubApi) -> None:
    provisioner_service.delay = 1.0

    with pytest.raises(ProviderTimeout) as raised:
        HttpProvisioner().provision(idempotency_key="workspace:1", name="Acme")

    assert str(raised.value) == "the workspace service did not answer within 0.3 seconds"


def test_it_reports_an_unreachable_provisioning_service(settings: Any) -> None:
    settings.WORKSPACE_PROVISIONER_URL = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(ProviderError) as raised:
        HttpProvisioner().provision(idempotency_key="workspace:1", name="Acme")

    assert str(raised.value) == "could not reach the workspace service (the connection was refused)"


def test_it_picks_the_adapter_from_settings(settings: Any) -> None:
    settings.FAULT_INJECTION = False
    settings.WORKSPACE_PROVIDER = "http"
    assert isinstance(provisioner(), HttpProvisioner)
    settings.WORKSPACE_PROVIDER = "local"
    assert isinstance(provisioner(), LocalProvisioner)
    settings.FAULT_INJECTION = True
    assert isinstance(provisioner(), WithFaults)


def test_it_asks_the_provisioning_service_whether_a_workspace_exists(provisioner_service: StubApi) -> None:
    provisioner_service.reply = lambda request: {
        "/workspaces/ws_remote_7": (200, b'{"id": "ws_remote_7"}'),
        "/workspaces/i-just-made-this-up": (404, b'{"error": "no such workspace"}'),
    }.get(request["path"], (503, b"{}"))

    assert HttpProvisioner().lookup(external_id="ws_remote_7") is True
    assert HttpProvisioner().lookup(external_id="i-just-made-this-up") is False
    with pytest.raises(ProviderError):
        HttpProvisioner().lookup(external_id="ws_remote_8")  # the service cannot say: not taken as "unknown"
    assert {r["method"] for r in provisioner_service.requests} == {"GET"}
    assert provisioner_service.requests[0]["headers"]["Authorization"] == "Bearer provisioner-token"


@pytest.mark.django_db
def test_it_knows_only_the_workspaces_the_local_provisioner_made() -> None:
    made = LocalProvisioner().provision(idempotency_key="console:1", name="Acme")

    assert LocalProvisioner().lookup(external_id=made) is True
    assert LocalProvisioner().lookup(external_id="ws_99999999") is False
    assert LocalProvisioner().lookup(external_id="i-just-made-this-up") is False
