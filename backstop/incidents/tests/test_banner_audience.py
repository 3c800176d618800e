"""The banner is for the customers an incident hurts now, staff, and visitors of the failing capability's own pages;
answered from the status file alone (the database out of reach), and rewritten when a customer recovers."""

from __future__ import annotations

import json
import re
import wsgiref.util
from pathlib import Path
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client

from backstop.accounts.models import Account, SetupStep, StepStatus
from backstop.incidents import audience, lifecycle, public
from backstop.incidents.detection import watch_breakers
from backstop.incidents.models import Incident
from backstop.incidents.status_page import write_status_file
from backstop.incidents.tests.helpers import break_provider, finish_waiting, staff, waiting_customer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def status_file(settings: Any, tmp_path: Path) -> Path:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "status.json"
    return Path(settings.INCIDENTS_STATUS_FILE)


def _banner(*, token: str = "", page: str = "") -> list[dict[str, Any]]:
    """/status/banner.json as the banner's script asks it, through the front that answers before Django."""
    environ: dict[str, Any] = {"PATH_INFO": "/status/banner.json", "REQUEST_METHOD": "GET",
                               "QUERY_STRING": f"page={page}" if page else ""}
    if token:
        environ[audience.BANNER_TOKEN_ENVIRON] = token
    wsgiref.util.setup_testing_defaults(environ)
    answered: dict[str, Any] = {}
    body = b"".join(public.status_first(WSGIHandler())(environ, lambda status, headers: answered.update(
        status=status, headers=dict(headers))))
    assert answered["status"] == "200 OK" and "no-store" in answered["headers"]["Cache-Control"]
    live: list[dict[str, Any]] = json.loads(body)["live"]
    return live


def _page(path: str, account: Account | None = None) -> tuple[str, str]:
    """(the banner token the page rendered into the script's tag, the page name its status link gives)."""
    client = Client()
    if account is not None:
        client.force_login(account, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get(path)
    assert response.status_code == 200, path
    html = response.content.decode()
    token = re.search(r'<script src="/status/banner.js" data-banner-token="(\w*)" defer></script>', html)
    page = re.search(r'data-incident-page="(\w*)"', html)
    assert token, path
    return token.group(1), page.group(1) if page else ""


def _workspace_outage() -> tuple[Incident, Account]:
    break_provider("workspace")
    hurt = waiting_customer()
    watch_breakers()
    write_status_file()
    return Incident.objects.get(), hurt


def _signed_in_customer() -> Account:
    return Account.objects.create(email="fine@example.com", email_key="fine@example.com", name="Fine",
                                  company="Acme", state="active")


def test_it_shows_the_banner_to_a_signed_in_customer_the_incident_hurts() -> None:
    incident, hurt = _workspace_outage()
    token, page = _page("/setup", hurt)  # where a customer whose setup waits is sent
    assert token == audience.account_token(hurt.pk) and page == "setup"
    # On any other page (no page named), by the token alone.
    assert [i["id"] for i in _banner(token=token)] == [incident.pk]


def test_it_hides_the_banner_from_a_signed_in_customer_it_does_not_hurt() -> None:
    _workspace_outage()
    token, page = _page("/app", _signed_in_customer())
    assert token and _banner(token=token, page=page) == []
    assert _banner() == []  # nor to an anonymous visitor of an ordinary page
    assert _banner(token="0" * 32) == []  # nor to a made-up token


def test_it_shows_every_live_incident_to_staff() -> None:
    _workspace_outage()
    break_provider("email")
    watch_breakers()  # an email incident that hurts nobody yet
    write_status_file()
    token, _ = _page("/desk/incidents/", staff())
    assert token == audience.staff_token()
    assert sorted(i["capability"] for i in _banner(token=token)) == ["email", "workspace"]


def test_it_shows_the_banner_to_any_visitor_of_the_failing_capabilitys_own_page() -> None:
    break_provider("payments")
    watch_breakers()
    write_status_file()
    token, page = _page("/checkout")  # anonymous
    assert (token, page) == ("", "checkout")
    assert [i["capability"] for i in _banner(page=page)] == ["payments"]
    assert _banner(page="setup") == []  # a page of another capability
    _, contact = _page("/support/contact")
    assert [i["capability"] for i in _banner(page=contact)] == ["payments"]  # writing in: told of every outage
    unaffected = _signed_in_customer()
    token, page = _page("/setup", unaffected)
    assert page == "setup" and _banner(token=token, page=page) == []


def test_it_stops_showing_the_banner_to_a_customer_once_they_recovered(
        status_file: Path, django_capture_on_commit_callbacks: Any) -> None:
    incident, first = _workspace_outage()
    second = waiting_customer()
    with django_capture_on_commit_callbacks(execute=True):
        watch_breakers()
    assert _banner(token=audience.account_token(first.pk)) and _banner(token=audience.account_token(second.pk))
    finish_waiting(first)
    with django_capture_on_commit_callbacks(execute=True):
        watch_breakers()
    assert _banner(token=audience.account_token(first.pk)) == []
    # The second recovers as the first is hurt again: one hurt before and after, two in all before and after, no
    # state change; the audience alone changed, and that rewrote the file.
    finish_waiting(second)
    SetupStep.objects.filter(account=first).update(status=StepStatus.WAITING, done_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        watch_breakers()
    incident.refresh_from_db()
    assert (incident.state, incident.customers_affected) == ("detected", 2)
    assert _banner(token=audience.account_token(second.pk)) == []
    assert [i["id"] for i in _banner(token=audience.account_token(first.pk))] == [incident.pk]


def test_it_answers_the_banner_from_the_file_with_the_database_unreachable(django_db_blocker: Any) -> None:
    incident, hurt = _workspace_outage()
    token = audience.account_token(hurt.pk)
    with django_db_blocker.block():  # any query now raises: the answer must not make one
        assert [i["id"] for i in _banner(token=token)] == [incident.pk]
        assert _banner(token=audience.account_token(hurt.pk + 1000)) == []
        with pytest.raises(RuntimeError):
            Incident.objects.count()


def test_it_keeps_the_audience_out_of_the_public_status_json(status_file: Path) -> None:
    _, hurt = _workspace_outage()
    private = json.loads(status_file.read_text())["live"][0]
    assert private["audience"] == [audience.account_token(hurt.pk)] and private["audience_known"] is True
    public_json = Client().get("/status.json").content.decode()
    assert "audience" not in public_json and audience.account_token(hurt.pk) not in public_json
    assert hurt.email not in status_file.read_text() and '"account_id"' not in status_file.read_text()


def test_it_shows_an_incident_opened_by_hand_to_everyone() -> None:
    """Nothing counts whom a hand-opened incident hurts (no cause): its banner is for every visitor."""
    lifecycle.open_incident(title="Sign-in is slow after a deploy", capability="sign_in")
    write_status_file()
    assert [i["title"] for i in _banner()] == ["Sign-in is slow after a deploy"]


def test_it_knows_the_capabilities_of_every_page_it_names() -> None:
    from backstop.incidents import messages

    for page, capabilities in audience.PAGE_CAPABILITIES.items():
        assert capabilities, page
        for capability in capabilities - {audience.EVERY_CAPABILITY}:
            assert capability in messages.CAPABILITY_NAMES, (page, capability)
