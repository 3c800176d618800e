"""/status: public, from the file written at each change, answering with the database unreachable; the banner's
script; the links from the pages where customers wait; staff updates from the desk."""

from __future__ import annotations

import json
import re
import wsgiref.util
from pathlib import Path
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client

from backstop.incidents import lifecycle, public
from backstop.incidents.detection import watch_breakers
from backstop.incidents.models import Incident, IncidentState
from backstop.incidents.status_page import write_status_file
from backstop.incidents.tests.helpers import break_provider, staff, waiting_customer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def status_file(settings: Any, tmp_path: Path) -> Path:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "status.json"
    return Path(settings.INCIDENTS_STATUS_FILE)


def _get(app: Any, path: str) -> tuple[str, dict[str, str], bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    wsgiref.util.setup_testing_defaults(environ)
    answered: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answered.update(status=status, headers=dict(headers))

    body = b"".join(app(environ, start_response))
    return answered["status"], answered["headers"], body


def _live_incident_with_update() -> Incident:
    break_provider("workspace")
    waiting_customer()
    watch_breakers()
    incident = Incident.objects.get()
    lifecycle.post_update(incident_id=incident.pk, body="We are looking into failed workspace creation.",
                          state=IncidentState.INVESTIGATING, staff=staff(), idempotency_key="k1")
    write_status_file()
    return incident


def test_it_answers_status_from_its_file_with_the_database_unreachable(django_db_blocker: Any) -> None:
    incident = _live_incident_with_update()
    app = public.status_first(WSGIHandler())
    with django_db_blocker.block():  # any query now raises: the front must not make one
        status, headers, body = _get(app, "/status")
        _, json_headers, json_body = _get(app, "/status.json")
        _, _, script = _get(app, "/status/banner.js")
        with pytest.raises(RuntimeError):  # the proof that the database is out of reach here
            Incident.objects.count()
    page = body.decode()
    assert status == "200 OK" and headers["Content-Type"].startswith("text/html")
    assert "Some things are not working" in page and "Workspace creation" in page
    assert "We are looking into failed workspace creation." in page and "Investigating" in page
    assert page.count('class="hit"') == 1  # today, in the 90 days
    live = json.loads(json_body)["live"]
    assert json_headers["Content-Type"] == "application/json" and [i["id"] for i in live] == [incident.pk]
    assert b"/status/banner.json" in script and b"__POLL_MS__" not in script


def test_it_says_all_is_well_before_any_file_was_written(status_file: Path, django_db_blocker: Any) -> None:
    assert not status_file.exists()
    with django_db_blocker.block():
        status, _, body = _get(public.status_first(WSGIHandler()), "/status")
    assert status == "200 OK" and b"All systems working" in body and b"No incidents in the last 90 days" in body


def test_it_serves_the_same_page_through_django_where_the_front_is_absent() -> None:
    _live_incident_with_update()
    response = Client().get("/status")
    assert response.status_code == 200 and b"We are looking into failed workspace creation." in response.content


def test_it_links_the_setup_contact_and_checkout_pages_to_the_status_page() -> None:
    client = Client()
    client.force_login(waiting_customer(), backend="django.contrib.auth.backends.ModelBackend")
    for path in ("/setup", "/support/contact", "/checkout"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert re.search(rb'<a href="/status">', response.content), path
        assert re.search(rb'<script src="/status/banner.js" data-banner-token="\w+" defer>', response.content), path


def test_it_posts_a_drafted_update_from_the_desk_once_however_often_it_is_clicked(
        status_file: Path, django_capture_on_commit_callbacks: Any) -> None:
    break_provider("workspace")
    watch_breakers()
    incident = Incident.objects.get()
    desk = Client()
    desk.force_login(staff(), backend="django.contrib.auth.backends.ModelBackend")
    page = desk.get(f"/desk/incidents/record/{incident.pk}").content.decode()
    form = re.search(r'data-state="investigating">.*?name="idempotency_key" value="(\w+)".*?'
                     r'<textarea name="body" rows="3">(.*?)</textarea>', page, re.DOTALL)
    assert form, "no drafted update for investigating"
    key, drafted = form.group(1), form.group(2)
    assert "Workspace creation" in drafted and "[" not in drafted
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = desk.post(f"/desk/incidents/record/{incident.pk}/update",
                                 {"state": "investigating", "idempotency_key": key, "body": drafted})
        assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.state == IncidentState.INVESTIGATING and incident.updates.count() == 1
    assert json.loads(status_file.read_text())["live"][0]["updates"][0]["state"] == "investigating"
    assert desk.get("/desk/incidents/").status_code == 200


def test_it_keeps_the_desk_pages_to_staff() -> None:
    assert Client().get("/desk/incidents/").status_code == 302
    customer = waiting_customer()
    client = Client()
    client.force_login(customer, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/desk/incidents/").status_code == 403


def test_it_lets_staff_open_an_incident_by_hand_from_the_desk(status_file: Path,
                                                              django_capture_on_commit_callbacks: Any) -> None:
    desk = Client()
    person = staff()
    desk.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    with django_capture_on_commit_callbacks(execute=True):
        response = desk.post("/desk/incidents/open", {"title": "Exports fail after the 14:00 deploy",
                                                      "capability": "Exports", "severity": "2"})
    incident = Incident.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/desk/incidents/record/{incident.pk}"
    assert (incident.opened_by, incident.opened_by_staff_id, incident.capability, incident.severity) == (
        "staff", person.pk, "exports", 2)
    assert json.loads(status_file.read_text())["live"][0]["title"] == "Exports fail after the 14:00 deploy"
