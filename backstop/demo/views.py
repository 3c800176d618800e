"""Demo-only pages: the tour, the local mailbox and the fault panel (mounted only when BACKSTOP_DEMO_PAGES is on)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from backstop.demo import inbound_mail, messages, tour
from backstop.demo.faults import PROVIDERS, modes_for, validate_faults
from backstop.demo.models import FaultMode, FaultSetting
from backstop.notify.models import Channel, LocalMailboxItem

MAILBOX_PAGE_SIZE = 100


def _mailbox_items(to: str) -> list[dict[str, Any]]:
    items = LocalMailboxItem.objects.all()
    if to:
        items = items.to_customer(to)
    return [
        {"id": i.id, "channel": i.channel, "to": i.to, "subject": i.subject, "text": i.text,
         "message_id": i.message_id, "reply_to": i.reply_to, "created_at": i.created_at.isoformat()}
        for i in items[:MAILBOX_PAGE_SIZE]
    ]


def mailbox_page(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/mailbox.html", {"items": _mailbox_items(request.GET.get("to", "")),
                                                 "answer": request.session.pop("demo_mailbox_answer", "")})


@require_POST
def mailbox_answer(request: HttpRequest, item_id: int) -> HttpResponse:
    """The customer answers an email: "Reply as the customer" (their text) or their out-of-office responder. The
    message goes to the site's inbound webhook over HTTP, signed like an ESP's (backstop.demo.inbound_mail)."""
    item = get_object_or_404(LocalMailboxItem, pk=item_id, channel=Channel.EMAIL)
    if request.POST.get("kind") == "out_of_office":
        raw = inbound_mail.out_of_office(item)
    else:
        text = request.POST.get("text", "").strip()
        if not text:
            request.session["demo_mailbox_answer"] = "Type the customer's reply first."
            return redirect("demo-mailbox")
        raw = inbound_mail.customer_reply(item, text=text)
    try:
        answer = inbound_mail.post_to_inbound_webhook(raw, recipient=item.reply_to, sender=item.to)
        said = f"The inbound webhook answered {answer.status_code}: {answer.text}"
    except httpx.HTTPError as error:
        said = f"The inbound webhook could not be reached ({error.__class__.__name__})."
    request.session["demo_mailbox_answer"] = said
    return redirect("demo-mailbox")


def mailbox_api(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"messages": _mailbox_items(request.GET.get("to", ""))})


def _current_faults() -> dict[str, str]:
    return {provider: FaultSetting.objects.mode_of(provider) for provider in PROVIDERS}


def _fault_rows() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(provider, current mode, the modes it can take) for the panel: crash_after_charge only for payments."""
    return [(provider, mode, [(value, FaultMode(value).label) for value in modes_for(provider)])
            for provider, mode in _current_faults().items()]


@csrf_exempt  # a demo control used from scripts; never mounted in production
@require_http_methods(["GET", "POST"])
def faults_api(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        try:
            modes = json.loads(request.body)
            if not isinstance(modes, dict):
                raise ValueError("send a JSON object like {\"email\": \"timeout\"}")
            modes = {str(k).lower(): str(v).lower() for k, v in modes.items()}
            validate_faults(modes)
        except ValueError as error:
            return JsonResponse({"code": "invalid_input", "message": str(error)}, status=400)
        FaultSetting.objects.set_modes(modes)
    return JsonResponse({"faults": _current_faults()})


@require_http_methods(["GET", "POST"])
def faults_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        modes = {p: request.POST.get(p, FaultMode.OK) for p in PROVIDERS}
        try:
            validate_faults(modes)
        except ValueError as error:
            return render(request, "demo/faults.html", {"rows": _fault_rows(), "problem": str(error)}, status=400)
        FaultSetting.objects.set_modes(modes)
        return redirect("demo-faults")
    return render(request, "demo/faults.html", {"rows": _fault_rows()})


def tour_page(request: HttpRequest) -> HttpResponse:
    """The demo's home page: the three scenarios, each one button (backstop/demo/tour.py)."""
    return render(request, "demo/tour.html", {
        "m": messages, "scenarios": [(s, s.texts) for s in tour.SCENARIOS.values()],
        "faults_text": tour.faults_text(tour.current_faults()), "notice": request.session.pop("demo_tour_notice", ""),
        "staff_sign_in": messages.TOUR_STAFF_SIGN_IN.format(email=tour.DEMO_STAFF_EMAIL,
                                                            password=tour.DEMO_STAFF_PASSWORD),
    })


@require_POST
def tour_start(request: HttpRequest, key: str) -> HttpResponse:
    """One scenario's button: its faults set, then the page it starts from."""
    if key not in tour.SCENARIOS:
        raise Http404("no such scenario")
    return redirect(tour.start_scenario(key=key).opens)


@require_POST
def tour_clear(request: HttpRequest) -> HttpResponse:
    tour.clear_faults()
    request.session["demo_tour_notice"] = messages.TOUR_CLEARED
    return redirect("demo-tour")
