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

from backstop.incidents import chart, lifecycle, messages, public, timeline
from backstop.incidents.forms import OpenIncidentForm, SeverityForm, UpdateForm
from backstop.incidents.models import AffectedCustomer, Incident, IncidentState, OpenedBy, Severity

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
    content_type, body, cache = public.answer(request.path)
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = cache
    return response


@staff_only
def incidents_page(request: HttpRequest) -> HttpResponse:
    return render(request, "incidents/desk_list.html", {
        "live": Incident.objects.live(),
        "history": Incident.objects.filter(state=IncidentState.RESOLVED).order_by("-started_at")[:100],
        "form": OpenIncidentForm(), "severity_rule": _severity_rule(),
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
