"""The desk's incident pages (/desk/incidents/...) and the public status routes as Django sees them.

In production ``/status`` is answered in front of Django (``public.status_first``); these routes answer the same
bytes where the site runs without that wrapper (the test client, ``runserver``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from backstop.accounts.models import Account
from backstop.drafts.owners import discard_submitted_draft
from backstop.incidents import amends, audience, chart, followup, hooks, lifecycle, messages, public, timeline
from backstop.incidents import postmortem as postmortem_facts
from backstop.incidents.forms import (
    ActionItemForm,
    AmendsForm,
    CapacityForm,
    OpenIncidentForm,
    PostMortemForm,
    SeverityForm,
    UpdateForm,
)
from backstop.incidents.models import (
    ActionItem,
    AffectedCustomer,
    Incident,
    IncidentState,
    OpenedBy,
    Priority,
    Severity,
    TeamCapacity,
)
from backstop.lib.errors import InvalidInput

View = Callable[..., HttpResponse]
PERMISSION = "incidents.change_incident"


def staff_only(view: View) -> View:
    """Anonymous: to the sign-in page. Signed in without the permission (or not staff): 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_staff and request.user.has_perm(PERMISSION)):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
def status(request: HttpRequest) -> HttpResponse:
    content_type, body, cache = public.answer(request.path, token=request.headers.get(audience.BANNER_TOKEN_HEADER, ""),
                                              query=request.META.get("QUERY_STRING", ""))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = cache
    return response


@staff_only
def incidents_page(request: HttpRequest) -> HttpResponse:
    return render(request, "incidents/desk_list.html", {
        "live": Incident.objects.live(),
        "history": Incident.objects.filter(state=IncidentState.RESOLVED).order_by("-started_at")[:100],
        "form": OpenIncidentForm(), "severity_rule": _severity_rule(),
        # Tracked here until done, across incidents, against what the team can give.
        "open_items": ActionItem.objects.filter(done_at__isnull=True).select_related("owner", "incident")
        .order_by("priority", "due"),
        "capacity": postmortem_facts.capacity_check(),
    })


@staff_only
@require_POST
def open_incident_page(request: HttpRequest) -> HttpResponse:
    form = OpenIncidentForm(request.POST)
    if not form.is_valid():
        return render(request, "incidents/desk_list.html", {
            "live": Incident.objects.live(), "history": [], "form": form, "severity_rule": _severity_rule()},
            status=400)
    incident, _ = lifecycle.open_incident(title=form.cleaned_data["title"],
                                          capability=form.cleaned_data["capability"].strip().lower(),
                                          opened_by=OpenedBy.STAFF, staff=request.user,
                                          severity=form.cleaned_data["severity"])
    return redirect("desk-incident-record", incident_id=incident.pk)


def _severity_rule() -> str:
    return messages.SEVERITY_RULE.format(sev1=settings.INCIDENT_SEV1_CUSTOMERS, sev2=settings.INCIDENT_SEV2_CUSTOMERS)


@staff_only
def incident_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = get_object_or_404(Incident, pk=incident_id)
    start, end = timeline.incident_window(incident)
    next_states = [incident.state, *sorted(lifecycle.TRANSITIONS[incident.state])] \
        if incident.state != IncidentState.RESOLVED else []
    drafts = [{"state": state, "label": messages.STATE_LABELS[state],
               "body": lifecycle.drafted_update(incident=incident, state=state), "key": uuid.uuid4().hex}
              for state in next_states]
    affected = AffectedCustomer.objects.filter(incident=incident)
    return render(request, "incidents/desk_incident.html", {
        "incident": incident, "state_label": messages.STATE_LABELS[incident.state],
        "capability": messages.capability_name(incident.capability), "drafts": drafts,
        "updates": incident.updates.select_related("staff").order_by("-created_at"),
        "timeline": timeline.build_timeline(incident),
        "chart": chart.affected_chart(timeline.affected_series(incident), start=start, end=end),
        "affected_now": affected.filter(recovered_at__isnull=True).count(), "affected_total": affected.count(),
        "severities": Severity.choices, "severity_rule": _severity_rule(),
        "amends": amends.amends_counts(incident),
        # The desk's card of the same outage (the cases it grouped), as the desk answers it.
        "desk_cards": hooks.desk_cards(incident.pk),
    })


@staff_only
@require_POST
def post_update_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    form = UpdateForm(request.POST)
    if form.is_valid():
        try:
            lifecycle.post_update(incident_id=incident_id, body=form.cleaned_data["body"],
                                  state=form.cleaned_data["state"], staff=request.user,
                                  idempotency_key=form.cleaned_data["idempotency_key"])
        except lifecycle.TransitionRefused as refused:
            return HttpResponse(str(refused), status=409, content_type="text/plain")
    return redirect("desk-incident-record", incident_id=incident_id)


@staff_only
@require_POST
def severity_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    form = SeverityForm(request.POST)
    if form.is_valid():
        lifecycle.set_severity(incident_id=incident_id, severity=form.cleaned_data["severity"], staff=request.user)
    return redirect("desk-incident-record", incident_id=incident_id)


# --- Post-mortem, action items, capacity ----------------------------------------------------------------

@staff_only
def postmortem_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = get_object_or_404(Incident, pk=incident_id)
    if request.method == "POST":
        form = PostMortemForm(request.POST)
        if form.is_valid():
            followup.save_postmortem(incident_id=incident.pk, markdown=form.cleaned_data["markdown"],
                                     staff=request.user)
            discard_submitted_draft(request)
            return redirect("desk-incident-postmortem", incident_id=incident.pk)
    postmortem = followup.start_postmortem(incident_id=incident.pk)
    check = postmortem_facts.capacity_check()
    return render(request, "incidents/desk_postmortem.html", {
        "incident": incident, "postmortem": postmortem, "capacity": check,
        "team_capacity": TeamCapacity.objects.first(),
        "items": ActionItem.objects.filter(incident=incident).select_related("owner"),
        "staff": Account.objects.filter(is_staff=True).order_by("name"), "priorities": Priority.choices,
    })


@staff_only
@require_POST
def redraft_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    followup.redraft_postmortem(incident_id=incident_id, staff=request.user)
    return redirect("desk-incident-postmortem", incident_id=incident_id)


@staff_only
@require_GET
def postmortem_markdown(request: HttpRequest, incident_id: int) -> HttpResponse:
    postmortem = followup.start_postmortem(incident_id=incident_id)
    response = HttpResponse(postmortem.markdown, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="incident-{incident_id}-postmortem.md"'
    return response


@staff_only
@require_POST
def action_item_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    form = ActionItemForm(request.POST)
    if form.is_valid():
        try:
            followup.add_action_item(incident_id=incident_id, title=form.cleaned_data["title"],
                                     owner_id=form.cleaned_data["owner"], priority=form.cleaned_data["priority"],
                                     due=form.cleaned_data["due"], estimate_hours=form.cleaned_data["estimate_hours"])
        except InvalidInput as refused:
            return HttpResponse(str(refused), status=400, content_type="text/plain")
    return redirect("desk-incident-postmortem", incident_id=incident_id)


@staff_only
@require_POST
def action_item_done_page(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_object_or_404(ActionItem, pk=item_id)
    followup.finish_action_item(item_id=item.pk)
    return redirect("desk-incident-postmortem", incident_id=item.incident_id)


@staff_only
@require_POST
def capacity_page(request: HttpRequest) -> HttpResponse:
    form = CapacityForm(request.POST)
    if form.is_valid():
        followup.set_team_capacity(people=form.cleaned_data["people"],
                                   hours_per_week=form.cleaned_data["hours_per_week"])
    back = request.POST.get("next", "")
    return redirect(back if back.startswith("/desk/incidents/") else "desk-incidents")


# --- Amends ----------------------------------------------------------------------------------------------

@staff_only
def amends_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = get_object_or_404(Incident, pk=incident_id)
    if request.method == "POST":
        form = AmendsForm(request.POST)
        if form.is_valid():
            amends.request_amends(incident_id=incident.pk, credit_days=form.cleaned_data["credit_days"] or 0,
                               staff=request.user, idempotency_key=form.cleaned_data["idempotency_key"])
        return redirect("desk-incident-amends", incident_id=incident.pk)
    try:
        credit_days = max(0, min(90, int(request.GET.get("credit_days", "0") or 0)))
    except ValueError:
        credit_days = 0
    preview = amends.preview_amends(incident_id=incident.pk, credit_days=credit_days)
    return render(request, "incidents/desk_amends.html", {
        "incident": incident, "preview": preview[:5], "customers": len(preview),
        "paying": sum(1 for amend in preview if amend.paying), "credit_days": credit_days,
        "key": uuid.uuid4().hex, "counts": amends.amends_counts(incident),
        "actions": incident.amends.select_related("staff").order_by("-created_at"),
        "in_progress": incident.amends.filter(finished_at__isnull=True).exists(),
    })
