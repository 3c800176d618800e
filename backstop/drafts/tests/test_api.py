"""The drafts API and pages, tried as an attacker: nobody reads or changes a draft that is not theirs, whatever
ids, surfaces or cookies they send."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from django.test import Client

from backstop.drafts.models import Draft
from backstop.drafts.owners import ANONYMOUS_COOKIE
from backstop.support.models import Case
from backstop.support.tests.helpers import desk_client, staff_account, stalled_account


def _visitor() -> Client:
    """A browser on the contact page: it has its CSRF cookie and, once it types, its draft cookie."""
    client = Client(enforce_csrf_checks=True)
    assert client.get("/support/contact").status_code == 200
    return client


def _put(client: Client, surface: str, text: str, *, base: int = 0, save_id: str | None = None,
         csrf: bool = True) -> Any:
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value} if csrf else {}
    return client.put(f"/api/drafts/{surface}", json.dumps({
        "fields": {"message": text}, "base_version": base, "save_id": save_id or str(uuid.uuid4()), "device": "t1",
    }), content_type="application/json", headers=headers)


def _signed_in(email: str) -> Client:
    client = desk_client(staff_account(email=email, is_staff=False, permissions=()))
    client.handler.enforce_csrf_checks = True
    client.get("/support/contact")  # for the CSRF cookie
    return client


@pytest.mark.django_db
def test_it_keeps_a_visitors_draft_under_a_signed_cookie_and_gives_it_back_to_that_visitor_only() -> None:
    alice = _visitor()
    assert ANONYMOUS_COOKIE in alice.cookies
    assert _put(alice, "contact", "my card was charged twice").status_code == 200
    mine = alice.get("/api/drafts/contact")
    assert mine.status_code == 200
    assert mine.json()["fields"] == {"message": "my card was charged twice"}

    mallory = _visitor()
    assert mallory.get("/api/drafts/contact").status_code == 404
    # Guessing: ids, other surfaces, encodings of the same surface, a made-up or re-signed cookie.
    draft_id = Draft.objects.get().pk
    for path in (f"/api/drafts/{draft_id}", "/api/drafts/contact%3A1", "/api/drafts/CONTACT", "/api/drafts/contact:",
                 "/api/drafts/%63ontact", f"/api/drafts/contact?owner=anon:{alice.cookies[ANONYMOUS_COOKIE].value}"):
        response = mallory.get(path)
        assert response.status_code in (400, 404), path
        assert "charged twice" not in response.content.decode(), path
    alice_id = alice.cookies[ANONYMOUS_COOKIE].value.split(":")[0]
    for forged in (alice_id, f"{alice_id}:forged-signature", uuid.uuid4().hex):
        mallory.cookies[ANONYMOUS_COOKIE] = forged
        response = mallory.get("/api/drafts/contact")
        assert response.status_code == 404, forged
        assert "charged twice" not in response.content.decode()
        # Saving under a forged cookie makes the attacker a fresh draft of their own; Alice's is untouched.
        assert _put(mallory, "contact", "overwritten?", base=1).status_code == 200
    assert alice.get("/api/drafts/contact").json()["fields"] == {"message": "my card was charged twice"}


@pytest.mark.django_db
def test_it_keeps_signed_in_peoples_drafts_apart_whatever_surface_they_name() -> None:
    ann, bob = _signed_in("ann@example.com"), _signed_in("bob@example.com")
    assert _put(ann, "note:1", "Ann's secret plan").status_code == 200
    assert _put(ann, "desk-reply:5", "Ann's reply").status_code == 200
    for surface in ("note:1", "desk-reply:5", "note:new", "contact"):
        response = bob.get(f"/api/drafts/{surface}")
        assert response.status_code == 404, surface
    # Bob saving on the same surface names makes his own drafts; the save conflicts with nothing of Ann's.
    assert _put(bob, "note:1", "Bob's").status_code == 200
    assert _put(bob, "desk-reply:5", "Bob's", base=7).status_code == 200
    assert ann.get("/api/drafts/note:1").json()["fields"] == {"message": "Ann's secret plan"}
    # Bob deleting "his" drafts deletes only his.
    assert bob.delete("/api/drafts/note:1", headers={"X-CSRFToken": bob.cookies["csrftoken"].value}).status_code == 204
    assert ann.get("/api/drafts/note:1").status_code == 200
    # Signed out, the same browser is a visitor with no drafts.
    ann.logout()
    assert ann.get("/api/drafts/note:1").status_code == 404


@pytest.mark.django_db
def test_it_hands_a_conflicts_other_text_to_its_owner_only() -> None:
    ann, bob = _signed_in("ann@example.com"), _signed_in("bob@example.com")
    taken = str(uuid.uuid4())
    assert _put(ann, "note:1", "from tab A", save_id=taken).json()["version"] == 1
    conflict = _put(ann, "note:1", "from tab B", base=0)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "draft_conflict"
    assert conflict.json()["draft"]["fields"] == {"message": "from tab A"}
    replay = _put(ann, "note:1", "from tab A", save_id=taken)
    assert (replay.status_code, replay.json()["replayed"], replay.json()["version"]) == (200, True, 1)
    reused = _put(bob, "note:1", "Bob reuses Ann's save id", save_id=taken, base=1)
    assert (reused.status_code, reused.json()["replayed"]) == (200, False)  # his own draft, nothing of Ann's
    assert "from tab A" not in reused.content.decode()
    assert ann.get("/api/drafts/note:1").json()["fields"] == {"message": "from tab A"}


@pytest.mark.django_db
def test_it_refuses_a_save_or_a_discard_without_the_pages_csrf_token() -> None:
    ann = _signed_in("ann@example.com")
    assert _put(ann, "note:1", "mine").status_code == 200
    refused = _put(ann, "note:1", "sent by another site", base=1, csrf=False)
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert ann.delete("/api/drafts/note:1").status_code == 403
    visitor = _visitor()
    assert _put(visitor, "contact", "no token", csrf=False).status_code == 403
    form_encoded = visitor.put("/api/drafts/contact", "fields=x", content_type="application/x-www-form-urlencoded",
                               headers={"X-CSRFToken": visitor.cookies["csrftoken"].value})
    assert form_encoded.status_code == 415
    assert Draft.objects.count() == 1


@pytest.mark.django_db
def test_it_answers_the_ping_without_touching_anything() -> None:
    response = Client().get("/api/drafts/ping")
    assert response.status_code == 204
    assert not response.cookies


@pytest.mark.django_db
def test_it_marks_editor_pages_for_the_service_worker_and_serves_the_script_itself() -> None:
    client = Client()
    page = client.get("/support/contact")
    html = page.content.decode()
    assert page["Backstop-Offline"] == "keep"
    assert re.search(r'<form [^>]*data-draft="contact" data-draft-scope="[0-9a-f]{24}"', html)
    assert 'src="/drafts/drafts.js"' in html
    assert "Saved on this device; we can't reach the server, keep typing" in html  # the texts come from messages.py
    assert "Backstop-Offline" not in client.get("/login")  # no editor, no copy kept
    assert client.get("/login")["Backstop-Drafts-Scope"] == page["Backstop-Drafts-Scope"]
    script = client.get("/drafts/drafts.js")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("text/javascript")
    assert client.get("/drafts/drafts.js", headers={"If-None-Match": script["ETag"]}).status_code == 304
    worker = client.get("/drafts-sw.js")
    assert worker["Service-Worker-Allowed"] == "/"
    assert b"Backstop-Offline" in worker.content


@pytest.mark.django_db
def test_it_forgets_the_draft_when_the_form_is_taken_and_keeps_it_when_it_is_not() -> None:
    visitor = _visitor()
    token = visitor.cookies["csrftoken"].value
    _put(visitor, "contact", "half a sentence")
    refused = visitor.post("/support/contact", {"email": "not an address", "message": "x", "draft_surface": "contact",
                                                "csrfmiddlewaretoken": token, "submission_key": "k1"})
    assert refused.status_code == 400
    assert visitor.get("/api/drafts/contact").status_code == 200
    taken = visitor.post("/support/contact", {"email": "ann@example.com", "message": "Help", "draft_surface": "contact",
                                              "csrfmiddlewaretoken": token, "submission_key": "k2"})
    assert taken.status_code == 200
    assert visitor.get("/api/drafts/contact").status_code == 404


@pytest.mark.django_db
def test_it_lets_a_form_discard_only_its_senders_own_draft() -> None:
    stalled_account("bob@example.com")
    case = Case.objects.get()
    surface = f"desk-reply:{case.pk}"
    ann = _signed_in("ann@example.com")
    _put(ann, surface, "Ann's draft of the same name")
    agent = desk_client(staff_account())
    saved = agent.put(f"/api/drafts/{surface}", json.dumps(
        {"fields": {"body": "agent's reply"}, "base_version": 0, "save_id": str(uuid.uuid4())}),
        content_type="application/json")
    assert saved.status_code == 200
    agent.post(f"/desk/cases/{case.pk}/note", {"idempotency_key": "n1", "body": "Checked with billing.",
                                               "draft_surface": surface})
    assert agent.get(f"/api/drafts/{surface}").status_code == 404  # the form named it: the agent's went
    assert ann.get(f"/api/drafts/{surface}").status_code == 200  # Ann's stays


@pytest.mark.django_db
def test_it_never_files_a_pages_text_under_someone_else_after_a_sign_out() -> None:
    ann = _signed_in("ann@example.com")
    scope = re.search(r'"scope": "([0-9a-f]{24})"', ann.get("/support/contact").content.decode())
    assert scope is not None
    ann.logout()
    ann.get("/support/contact")  # a fresh CSRF cookie, as the page would have after signing out elsewhere
    refused = ann.put("/api/drafts/note:1", json.dumps({
        "fields": {"body": "typed while signed in"}, "base_version": 0, "save_id": str(uuid.uuid4()),
        "scope": scope.group(1)}), content_type="application/json",
        headers={"X-CSRFToken": ann.cookies["csrftoken"].value})
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_your_page"
    assert not Draft.objects.exists()
