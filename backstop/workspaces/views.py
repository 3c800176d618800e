"""The workspace's notes pages: a list, a new note, and a note's editor (each with a draft that survives outages)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from backstop.drafts.owners import discard_submitted_draft
from backstop.lib import site_messages
from backstop.lib.errors import InvalidInput
from backstop.workspaces import messages
from backstop.workspaces.forms import NoteForm
from backstop.workspaces.models import Note
from backstop.workspaces.notes import NoteChanged, create_note, note_of, notes_of, update_note, workspace_of


def _account(request: HttpRequest) -> int:
    """The signed-in account's id (the views below are for signed-in people only)."""
    assert request.user.pk is not None
    return int(request.user.pk)


@login_required
def notes_page(request: HttpRequest) -> HttpResponse:
    if workspace_of(account_id=_account(request)) is None:
        return redirect("setup")
    return render(request, "workspaces/notes.html", {
        "notes": notes_of(account_id=_account(request)), "notice": request.session.pop("notes_notice", ""),
        "empty_text": messages.NO_NOTES,
    })


def _editor(request: HttpRequest, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
    context = {"errors": {}, "problem": "", "saved": None, "key": uuid.uuid4().hex, **context}
    return render(request, "workspaces/note.html", context, status=status)


@login_required
def new_note_page(request: HttpRequest) -> HttpResponse:
    if workspace_of(account_id=_account(request)) is None:
        return redirect("setup")
    form = NoteForm(request.POST or None)
    if request.method != "POST":
        return _editor(request, {"note": None, "title": "", "body": ""})
    if not form.is_valid():
        return _editor(request, {"note": None, "title": "", "body": "",
                                 "problem": site_messages.INVALID_INPUT.text}, status=400)
    data = form.cleaned_data
    try:
        note = create_note(account_id=_account(request), title=data["title"], body=data["body"], key=data["key"])
    except InvalidInput as error:
        return _editor(request, {"note": None, "title": data["title"], "body": data["body"], "key": data["key"],
                                 "errors": error.errors, "problem": site_messages.INVALID_INPUT.text}, status=400)
    discard_submitted_draft(request)
    request.session["notes_notice"] = messages.NOTE_CREATED
    return redirect("note", note_id=note.pk)


@login_required
def note_page(request: HttpRequest, note_id: int) -> HttpResponse:
    try:
        note = note_of(account_id=_account(request), note_id=note_id)
    except Note.DoesNotExist:
        raise Http404 from None
    if request.method != "POST":
        return _editor(request, {"note": note, "title": note.title, "body": note.body, "version": note.version,
                                 "notice": request.session.pop("notes_notice", "")})
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _editor(request, {"note": note, "title": note.title, "body": note.body, "version": note.version,
                                 "problem": site_messages.INVALID_INPUT.text}, status=400)
    data = form.cleaned_data
    typed = {"note": note, "title": data["title"], "body": data["body"], "key": data["key"]}
    try:
        update_note(account_id=_account(request), note_id=note.pk, title=data["title"], body=data["body"],
                    base_version=data["version"] or 0, key=data["key"])
    except InvalidInput as error:
        return _editor(request, {**typed, "version": data["version"], "errors": error.errors,
                                 "problem": site_messages.INVALID_INPUT.text}, status=400)
    except NoteChanged as changed:
        # Theirs is shown below the form, and saving again now is a choice made having seen it.
        return _editor(request, {**typed, "version": changed.current.version, "saved": changed.current,
                                 "problem": messages.NOTE_CHANGED.text}, status=409)
    discard_submitted_draft(request)
    request.session["notes_notice"] = messages.NOTE_SAVED
    return redirect("note", note_id=note.pk)
