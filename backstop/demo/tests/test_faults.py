"""Fault injection: the wrapper around each adapter, BACKSTOP_FAULTS parsing, and the demo fault panel and API."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from backstop.demo.faults import WithFaults, maybe_with_faults, parse_faults
from backstop.demo.models import FaultSetting
from backstop.lib.errors import ProviderError, ProviderTimeout
from backstop.notify.models import LocalMailboxItem
from backstop.notify.providers import email_provider, sms_provider
from backstop.workspaces.models import LocalProvisionedWorkspace
from backstop.workspaces.providers import provisioner


def send_email() -> None:
    email_provider().send_email(to="ann@example.com", subject="Hi", text="Hello", html="", message_id="<m1@backstop>")


def send_sms() -> None:
    sms_provider().send_sms(to="+14155550100", text="Hello", message_id="<m2@backstop>")


def provision() -> None:
    provisioner().provision(idempotency_key="workspace:1", name="Acme")


def calls_that_arrived() -> int:
    return LocalMailboxItem.objects.count() + LocalProvisionedWorkspace.objects.count()


CALLS: dict[str, Callable[[], None]] = {"email": send_email, "sms": send_sms, "workspace": provision}
TIMEOUT_SETTINGS = {"email": "EMAIL_TIMEOUT", "sms": "SMS_TIMEOUT", "workspace": "WORKSPACE_TIMEOUT"}


@pytest.fixture
def local_adapters(settings: Any) -> Any:
    settings.FAULT_INJECTION = True
    settings.EMAIL_BACKEND = "backstop.notify.providers.LocalMailboxEmailBackend"
    settings.SMS_PROVIDER = "mailbox"
    settings.WORKSPACE_PROVIDER = "local"
    settings.EMAIL_TIMEOUT = settings.SMS_TIMEOUT = settings.WORKSPACE_TIMEOUT = 0.2
    settings.FAULT_SLOW_SECONDS = 0.1
    return settings


@pytest.mark.django_db
@pytest.mark.parametrize("provider", sorted(CALLS))
def test_it_passes_calls_through_when_the_provider_is_ok(local_adapters: Any, provider: str) -> None:
    FaultSetting.objects.set_modes({provider: "ok"})

    CALLS[provider]()

    assert calls_that_arrived() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("provider", sorted(CALLS))
def test_it_answers_with_an_error_without_calling_the_adapter(local_adapters: Any, provider: str) -> None:
    FaultSetting.objects.set_modes({provider: "error"})

    with pytest.raises(ProviderError) as raised:
        CALLS[provider]()

    assert not isinstance(raised.value, ProviderTimeout)
    assert str(raised.value) == f"the {provider} provider answered with an error"
    assert calls_that_arrived() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("provider", sorted(CALLS))
def test_it_hangs_for_the_adapters_timeout_then_times_out(local_adapters: Any, provider: str) -> None:
    setattr(local_adapters, TIMEOUT_SETTINGS[provider], 0.3)
    FaultSetting.objects.set_modes({provider: "timeout"})
    started = time.monotonic()

    with pytest.raises(ProviderTimeout) as raised:
        CALLS[provider]()

    assert time.monotonic() - started >= 0.3
    assert str(raised.value) == f"the {provider} provider did not answer within 0.3 seconds"
    assert calls_that_arrived() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("provider", sorted(CALLS))
def test_it_answers_slowly_but_delivers(local_adapters: Any, provider: str) -> None:
    local_adapters.FAULT_SLOW_SECONDS = 0.25
    FaultSetting.objects.set_modes({provider: "slow"})
    started = time.monotonic()

    CALLS[provider]()

    assert time.monotonic() - started >= 0.25
    assert calls_that_arrived() == 1


@pytest.mark.django_db
def test_it_injects_faults_only_into_the_provider_it_names(local_adapters: Any) -> None:
    FaultSetting.objects.set_modes({"workspace": "error"})

    send_email()
    send_sms()

    assert LocalMailboxItem.objects.count() == 2


@pytest.mark.django_db
def test_it_leaves_adapters_unwrapped_when_fault_injection_is_off(local_adapters: Any) -> None:
    local_adapters.FAULT_INJECTION = False
    FaultSetting.objects.set_modes({"email": "error", "sms": "error", "workspace": "error"})
    adapter = object()

    assert maybe_with_faults("email", adapter, 1.0) is adapter
    for call in CALLS.values():
        call()
    assert calls_that_arrived() == 3


def test_it_wraps_every_method_of_the_adapter() -> None:
    class Adapter:
        def ping(self, value: int) -> int:
            return value + 1

    wrapped = WithFaults("email", Adapter(), 1.0)

    with pytest.raises(AttributeError):
        wrapped.missing  # noqa: B018  (the wrapper must not invent methods)
    assert callable(wrapped.ping)


def test_it_parses_the_faults_setting() -> None:
    assert parse_faults("") == {}
    assert parse_faults("email=timeout") == {"email": "timeout"}
    assert parse_faults(" Email = TIMEOUT , workspace=error,sms=slow, ") == {
        "email": "timeout", "workspace": "error", "sms": "slow"}


@pytest.mark.parametrize(("text", "complaint"), [
    ("printer=error", "unknown provider 'printer'"),
    ("email=explode", "unknown mode 'explode' for email"),
    ("email", "must look like 'name=value,name=value'"),
    ("=error", "must look like 'name=value,name=value'"),
    ("email=", "must look like 'name=value,name=value'"),
])
def test_it_rejects_a_malformed_faults_setting(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        parse_faults(text)


@pytest.mark.django_db
def test_it_stores_one_mode_per_provider() -> None:
    assert FaultSetting.objects.mode_of("email") == "ok"
    FaultSetting.objects.set_modes({"email": "timeout", "sms": "error"})
    FaultSetting.objects.set_modes({"email": "slow"})

    assert FaultSetting.objects.as_dict() == {"email": "slow", "sms": "error"}
    assert FaultSetting.objects.mode_of("workspace") == "ok"


# --- The demo panel and API, over HTTP against real server processes -----------------------------------

def faults_in(database: Any) -> dict[str, str]:
    """The stored modes of the providers these tests set (the panel may know more providers)."""
    return {provider: mode for provider, mode in database.query("SELECT provider, mode FROM demo_faultsetting")
            if provider in CALLS}


def api_faults(response: httpx.Response) -> dict[str, str]:
    return {provider: mode for provider, mode in response.json()["faults"].items() if provider in CALLS}


def test_it_sets_faults_for_every_process_through_the_api_and_the_panel(server_factory: Any) -> None:
    web = server_factory(BACKSTOP_FAULTS="email=timeout").start()

    assert api_faults(httpx.get(f"{web.url}/demo/api/faults"))["email"] == "timeout"
    changed = httpx.post(f"{web.url}/demo/api/faults", json={"Workspace": "ERROR", "sms": "slow"})

    assert changed.status_code == 200, changed.text
    assert api_faults(changed) == {"email": "timeout", "sms": "slow", "workspace": "error"}
    # Stored in the shared database, where every other process (and this test) reads it...
    assert faults_in(web.database) == {"email": "timeout", "sms": "slow", "workspace": "error"}
    # ...and read back from it: a change made by another process shows at once.
    web.database.query("UPDATE demo_faultsetting SET mode = 'ok' WHERE provider = 'sms'")
    assert api_faults(httpx.get(f"{web.url}/demo/api/faults"))["sms"] == "ok"
    web.database.query("UPDATE demo_faultsetting SET mode = 'slow' WHERE provider = 'sms'")

    for bad_body, complaint in [
        ({"email": "ok", "printer": "error"}, "unknown provider 'printer'"),
        ({"email": "explode"}, "unknown mode 'explode' for email"),
        (["email", "error"], "send a JSON object"),
    ]:
        refused = httpx.post(f"{web.url}/demo/api/faults", json=bad_body)
        assert refused.status_code == 400, bad_body
        assert refused.json()["code"] == "invalid_input"
        assert complaint in refused.json()["message"]
    garbled = httpx.post(f"{web.url}/demo/api/faults", content=b"{not json",
                         headers={"Content-Type": "application/json"})
    assert garbled.status_code == 400
    assert garbled.json()["code"] == "invalid_input"
    # Nothing was half-applied by the refused requests.
    assert faults_in(web.database) == {"email": "timeout", "sms": "slow", "workspace": "error"}

    panel = httpx.Client(base_url=web.url)
    page = panel.get("/demo/faults")
    assert page.status_code == 200
    assert 'name="workspace"' in page.text
    token = panel.cookies["csrftoken"]
    applied = panel.post("/demo/faults", data={"csrfmiddlewaretoken": token, "email": "ok", "sms": "ok",
                                               "workspace": "slow"})
    assert applied.status_code == 302
    assert faults_in(web.database) == {"email": "ok", "sms": "ok", "workspace": "slow"}
    refused_form = panel.post("/demo/faults", data={"csrfmiddlewaretoken": token, "email": "explode"})
    assert refused_form.status_code == 400
    assert "unknown mode" in refused_form.text
    assert faults_in(web.database)["email"] == "ok"


def test_it_is_installed_around_every_adapter_by_the_demo_app() -> None:
    from backstop.lib.adapters import adapter_wrappers

    assert adapter_wrappers() == [("faults", maybe_with_faults)]
