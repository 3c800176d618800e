from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from backstop.accounts.models import Account
from backstop.drafts.owners import discard_submitted_draft
from backstop.lib import site_messages
from backstop.lib.errors import InvalidInput
from backstop.lib.http import client_ip
from backstop.ratelimits.services import RateLimited
from backstop.support import commitments, desk, messages, presence, working_states
from backstop.support.actions import ActionRefused, repeat_text, reply_key, run_action
from backstop.support.case_notes import add_case_note
from backstop.support.contact import owner_wait_seconds, receive_contact, wait_for_answer
from backstop.support.forms import ActionForm, ContactForm, NoteForm, ReplyForm, form_problem
from backstop.support.inbound import caseless_inbound
from backstop.support.inbound_webhooks import handle_inbound_request
from backstop.support.models import ActionOutcome, Case, InboundAttachment, Incident
from backstop.support.replies import reply_already_sent, send_reply
from backstop.support.search import search_cases
from backstop.web.pages import form_page, note_rate_limited

View = Callable[..., HttpResponse]
VIEW_PERMISSION = "support.view_case"
ACT_PERMISSION = "support.change_case"
INCIDENTS_PERMISSION = "incidents.change_incident"  # the incident records' pages ask it (incidents.views)


def staff_only(permission: str) -> Callable[[View], View]:
    """Anonymous: to the sign-in page. Signed in without the permission (or not staff): 403, nothing else."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (request.user.is_staff and request.user.has_perm(permission)):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def contact_page(request: HttpRequest) -> HttpResponse:
    # A "write to us" link carries the address the person had typed where they got stuck (the sign-in page).
    typed = request.GET.get("email", "").strip()[:254]
    initial_email = getattr(request.user, "email", "") if request.user.is_authenticated else typed
    form = ContactForm(request.POST or None, initial={"email": initial_email})
    context: dict[str, Any] = {"form": form, "errors": {}, "problem": "", "answer": "", "email": initial_email,
                               "submission_key": uuid.uuid4().hex}
    if request.method == "POST" and form.is_valid():
        context.update(email=form.cleaned_data["email"],
                       submission_key=form.cleaned_data["submission_key"] or context["submission_key"])
        try:
            result = receive_contact(
                email=form.cleaned_data["email"], text=form.cleaned_data["message"],
                reference=form.cleaned_data["reference"], ip=client_ip(request),
                submission_key=form.cleaned_data["submission_key"], requester=request.user)
            if result.contact.from_owner:
                result = wait_for_answer(result, seconds=owner_wait_seconds())
        except InvalidInput as error:
            context.update(errors=error.errors, problem=site_messages.INVALID_INPUT.text)
        except RateLimited as error:
            note_rate_limited(context, error)
        else:
            discard_submitted_draft(request)
            context.update(answer=result.reply_for(request.user), reference=result.contact.our_reference)
    return form_page(request, "support/contact.html", context)


def _staff(request: HttpRequest) -> Account:
    # The session's middleware loaded the whole row already (Account is the user model): no second query per page.
    user = request.user
    return user if isinstance(user, Account) else Account.objects.signed_in(user)


@staff_only(VIEW_PERMISSION)
def desk_page(request: HttpRequest) -> HttpResponse:
    return render(request, "support/desk.html", {"home": desk.desk_home(), "empty_text": messages.DESK_EMPTY,
                                                 "search_placeholder": messages.SEARCH_PLACEHOLDER,
                                                 "sleeping": working_states.sleeping_cases(),
                                                 "sleeping_title": messages.DESK_SLEEPING,
                                                 "caseless": caseless_inbound(),
                                                 "caseless_title": messages.INBOUND_CASELESS_HEADING,
                                                 "shortcuts_help": messages.SHORTCUTS_HELP})


@staff_only(VIEW_PERMISSION)
def case_page(request: HttpRequest, case_id: int) -> HttpResponse:
    saved = request.GET.get("saved", "")
    try:  # the view model reads the case once (a lookup before it read the same row again)
        view = desk.case_view(case_id=case_id, staff=_staff(request),
                              saved_reply_id=int(saved) if saved.isdigit() else None)
    except Case.DoesNotExist:
        raise Http404 from None
    return render(request, "support/case.html", {
        "view": view, "case": view.case, "click_key": uuid.uuid4().hex, "case_version": view.case.version,
        "notice": request.session.pop("desk_notice", ""), "problem": request.session.pop("desk_problem", ""),
        "confirm_close": request.session.pop("desk_confirm_close", False) and view.case.is_open,
        "search_placeholder": messages.SEARCH_PLACEHOLDER,
        "working_state": working_states.state_text(view.case) if view.case.is_open else "",
        "seen_through": presence.timeline_marker(case_id=case_id), "heartbeat_ms": presence.HEARTBEAT_SECONDS * 1000,
        "shortcuts_help": messages.SHORTCUTS_HELP, "inbound_show_full": messages.INBOUND_SHOW_FULL,
        "next_case_id": Case.objects.queue().exclude(pk=case_id).values_list("pk", flat=True).first(),
    })


@staff_only(VIEW_PERMISSION)
@require_GET
def case_timeline(request: HttpRequest, case_id: int) -> HttpResponse:
    """The case's timeline before a moment (the case page shows its newest entries and links here for the rest)."""
    try:
        before = dt.datetime.fromisoformat(request.GET.get("before", ""))
        # In UTC, as the title says it is; a moment with an offset at the calendar's edge has no UTC time at all.
        before = (before if before.tzinfo else before.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        # Where in that moment the last page ended (entries sharing it are split by row and id, none lost).
        key = desk.timeline_key(before=before, key=request.GET.get("key"))
    except (ValueError, OverflowError):
        return redirect(reverse("desk-case", args=[case_id]) + "#timeline")
    try:
        page = desk.earlier_timeline(case_id=case_id, before=key)
    except Case.DoesNotExist:
        raise Http404 from None
    return render(request, "support/timeline_earlier.html", {
        "page": page, "case": {"pk": case_id}, "inbound_show_full": messages.INBOUND_SHOW_FULL,
        "title": messages.TIMELINE_EARLIER_TITLE.format(case=case_id, moment=f"{before:%H:%M:%S UTC, %-d %b %Y}"),
    })


@staff_only(ACT_PERMISSION)
@require_POST
def case_action(request: HttpRequest, case_id: int) -> HttpResponse:
    get_object_or_404(Case, pk=case_id)
    form = ActionForm(request.POST)
    if not form.is_valid():
        request.session["desk_problem"] = form_problem(form)
        return redirect("desk-case", case_id=case_id)
    data = form.cleaned_data
    if data["action"] == "close" and not request.POST.get("confirm") and (
            warning := commitments.close_warning(case_id)):
        # A promise still open: the close waits for a confirm, and the page's drafted reply is the message keeping it.
        request.session["desk_problem"] = warning
        request.session["desk_confirm_close"] = True
        return redirect(reverse("desk-case", args=[case_id]) + "#reply")
    params = {k: v for k, v in data.items() if k not in ("action", "case_version") and v not in ("", None)}
    try:
        result = run_action(case_id=case_id, staff=_staff(request), action=data["action"],
                            case_version=data["case_version"], params=params)
    except ActionRefused as refused:
        request.session["desk_problem"] = str(refused)
    else:
        if result.repeated:  # another tab (or a colleague) made this click first: say what happened
            request.session["desk_notice"] = repeat_text(result)
        else:
            went_wrong = result.outcome in (ActionOutcome.FAILED, ActionOutcome.REFUSED)
            request.session["desk_problem" if went_wrong else "desk_notice"] = result.note
    return redirect("desk-case", case_id=case_id)


@staff_only(ACT_PERMISSION)
@require_POST
def case_reply(request: HttpRequest, case_id: int) -> HttpResponse:
    get_object_or_404(Case, pk=case_id)
    form = ReplyForm(request.POST)
    if not form.is_valid():
        request.session["desk_problem"] = form_problem(form)
        return redirect("desk-case", case_id=case_id)
    data = form.cleaned_data
    staff = _staff(request)
    key = reply_key(case_id=case_id, click=data["idempotency_key"], case_version=data["case_version"],
                    subject=data["subject"], body=data["body"])
    # A repeat of a reply already sent (a second tab, the same words) is told so below; anything else newer than the
    # page asks first: the page comes back with it shown, the typed reply kept by its draft.
    if not reply_already_sent(staff=staff, key=key) and (
            newer := presence.newer_than(case_id=case_id, marker=data["seen_through"])):
        request.session["desk_problem"] = messages.REPLY_NEWER_EXISTS.format(what="; ".join(newer))
        return redirect(reverse("desk-case", args=[case_id]) + "#reply")
    try:
        result = send_reply(case_id=case_id, staff=staff, key=key, subject=data["subject"], body=data["body"],
                            save_as=data["save_as"])
    except ActionRefused as refused:
        request.session["desk_problem"] = str(refused)
    else:
        discard_submitted_draft(request)
        request.session["desk_notice"] = repeat_text(result) if result.repeated else result.note
    return redirect("desk-case", case_id=case_id)


@staff_only(ACT_PERMISSION)
@require_POST
def case_note(request: HttpRequest, case_id: int) -> HttpResponse:
    get_object_or_404(Case, pk=case_id)
    form = NoteForm(request.POST)
    if not form.is_valid():
        request.session["desk_problem"] = form_problem(form)
        return redirect("desk-case", case_id=case_id)
    try:
        add_case_note(case_id=case_id, staff=_staff(request), key=form.cleaned_data["idempotency_key"],
                      body=form.cleaned_data["body"])
    except ActionRefused as refused:
        request.session["desk_problem"] = str(refused)
    else:
        discard_submitted_draft(request)
        request.session["desk_notice"] = messages.NOTE_ADDED
    return redirect(reverse("desk-case", args=[case_id]) + "#notes")


@staff_only(VIEW_PERMISSION)
def incident_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = get_object_or_404(Incident, pk=incident_id)
    return render(request, "support/incident.html", {
        "incident": incident, "text": desk.incident_card_text(incident), "cases": desk.incident_cases(incident),
        "search_placeholder": messages.SEARCH_PLACEHOLDER,
        "records": incident.records.order_by("pk"), "record_link": messages.RECORD_LINK,
    })


@staff_only(VIEW_PERMISSION)
@require_GET
def desk_search(request: HttpRequest) -> HttpResponse:
    """The search box's answer: the page (a plain form submit), or only its results (``partial``, as you type)."""
    query = request.GET.get("q", "")
    # Incident records (and their post-mortems) for staff who may open them.
    answer = search_cases(query=query, with_incidents=request.user.has_perm(INCIDENTS_PERMISSION))
    context = {"answer": answer, "search_query": answer.query, "search_placeholder": messages.SEARCH_PLACEHOLDER,
               "incidents_title": messages.SEARCH_INCIDENTS, "postmortem_link": messages.SEARCH_POSTMORTEM}
    if request.GET.get("partial"):
        return render(request, "support/search_results.html", context)
    return render(request, "support/search.html", context)


@staff_only(VIEW_PERMISSION)
@require_POST
def case_presence(request: HttpRequest, case_id: int) -> HttpResponse:
    """The case page's heartbeat (or its goodbye, ``leave``): who else is on the case, and what is newer."""
    get_object_or_404(Case, pk=case_id)
    tab = request.POST.get("tab", "")
    if request.POST.get("leave"):
        presence.leave(case_id=case_id, staff=_staff(request), tab=tab)
        return JsonResponse({"others": [], "newer": ""})
    answer = presence.mark_present(case_id=case_id, staff=_staff(request), tab=tab,
                                   seen_through=request.POST.get("seen_through", ""))
    newer = messages.PRESENCE_NEWER.format(what="; ".join(answer.newer)) if answer.newer else ""
    return JsonResponse({"others": answer.others, "newer": newer})


@csrf_exempt  # an ESP posts here; anymail checks its signature (support.inbound_webhooks)
@require_http_methods(["POST", "HEAD"])  # some ESPs check the URL with HEAD when it is configured
def inbound_webhook(request: HttpRequest, esp: str) -> HttpResponse:
    answer = handle_inbound_request(request, esp=esp)
    return HttpResponse(answer.text, status=answer.status, content_type="text/plain; charset=utf-8")


@staff_only(VIEW_PERMISSION)
@require_GET
def inbound_attachment(request: HttpRequest, attachment_id: int) -> HttpResponse:
    """A stored attachment, always as a download (never rendered on our origin)."""
    attachment = get_object_or_404(InboundAttachment, pk=attachment_id, content__isnull=False)
    response = HttpResponse(bytes(attachment.content or b""), content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, attachment.filename) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    return response
