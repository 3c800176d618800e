"""The workspace's notes: one note per form sent, changes made on the version they were typed on, each person's
notes their own."""

from __future__ import annotations

import pytest
from django.test import Client

from backstop.accounts.models import Account, AccountState
from backstop.workspaces.models import Note, Workspace
from backstop.workspaces.notes import NoteChanged, create_note, update_note


def _customer(email: str = "ann@example.com", *, workspace: bool = True) -> tuple[Account, Client]:
    account = Account.objects.create(email=email, email_key=email, name="Ann", company="Acme",
                                     state=AccountState.ACTIVE if workspace else AccountState.SETTING_UP)
    if workspace:
        Workspace.objects.create(account=account, name="Acme", external_id=f"ws-{email}")
    client = Client()
    client.force_login(account, backend="django.contrib.auth.backends.ModelBackend")
    return account, client


@pytest.mark.django_db
def test_it_creates_one_note_for_one_form_sent_twice() -> None:
    _, client = _customer()
    form = {"title": "Launch plan", "body": "Ship on Monday.", "key": "page-1", "draft_surface": "note:new"}
    first = client.post("/notes/new", form)
    again = client.post("/notes/new", form)
    note = Note.objects.get()
    assert first["Location"] == again["Location"] == f"/notes/{note.pk}"
    assert (note.title, note.body, note.version) == ("Launch plan", "Ship on Monday.", 1)
    assert "Launch plan" in client.get("/notes").content.decode()


@pytest.mark.django_db
def test_it_changes_a_note_on_the_version_it_was_typed_on_and_shows_both_when_it_moved_on() -> None:
    account, client = _customer()
    note = create_note(account_id=account.pk, title="Plan", body="v1", key="k0")
    assert client.post(f"/notes/{note.pk}", {"title": "Plan", "body": "v2 from tab A", "key": "k1",
                                             "version": "1"}).status_code == 302
    assert client.post(f"/notes/{note.pk}", {"title": "Plan", "body": "v2 from tab A", "key": "k1",
                                             "version": "1"}).status_code == 302  # sent again: the same change
    stale = client.post(f"/notes/{note.pk}", {"title": "Plan", "body": "v2 from tab B", "key": "k2", "version": "1"})
    assert stale.status_code == 409
    page = stale.content.decode()
    assert "v2 from tab B" in page and "v2 from tab A" in page  # both texts, nothing overwritten
    note.refresh_from_db()
    assert (note.body, note.version) == ("v2 from tab A", 2)
    with pytest.raises(NoteChanged):
        update_note(account_id=account.pk, note_id=note.pk, title="Plan", body="x", base_version=1, key="k3")


@pytest.mark.django_db
def test_it_shows_no_one_elses_notes_and_hides_whether_they_exist() -> None:
    ann, _ = _customer()
    note = create_note(account_id=ann.pk, title="Ann's secret", body="private", key="k0")
    _, bob = _customer("bob@example.com")
    assert bob.get(f"/notes/{note.pk}").status_code == 404
    taken = bob.post(f"/notes/{note.pk}", {"title": "Mine now", "body": "", "key": "b1", "version": "1"})
    assert taken.status_code == 404
    assert bob.get(f"/notes/{note.pk + 1000}").status_code == 404
    assert "Ann's secret" not in bob.get("/notes").content.decode()
    note.refresh_from_db()
    assert note.title == "Ann's secret"


@pytest.mark.django_db
def test_it_asks_for_a_title_and_keeps_what_was_typed() -> None:
    _, client = _customer()
    response = client.post("/notes/new", {"title": "  ", "body": "half a thought", "key": "k1"})
    assert response.status_code == 400
    assert "Give the note a title." in response.content.decode()
    assert "half a thought" in response.content.decode()
    assert not Note.objects.exists()


@pytest.mark.django_db
def test_it_sends_visitors_to_sign_in_and_accounts_still_setting_up_to_their_setup() -> None:
    assert Client().get("/notes")["Location"].startswith("/login")
    _, client = _customer(workspace=False)
    assert client.get("/notes")["Location"] == "/setup"
    assert client.get("/notes/new")["Location"] == "/setup"


@pytest.mark.django_db
def test_it_puts_the_editor_under_drafts() -> None:
    account, client = _customer()
    note = create_note(account_id=account.pk, title="Plan", body="v1", key="k0")
    new_page = client.get("/notes/new")
    assert 'data-draft="note:new"' in new_page.content.decode()
    assert new_page["Backstop-Offline"] == "keep"
    assert f'data-draft="note:{note.pk}"' in client.get(f"/notes/{note.pk}").content.decode()
