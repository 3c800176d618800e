from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from backstop.drafts.owners import draft_owner, is_draft_page, made_visitor_id, owner_scope, remember_visitor

# An editor page the service worker may keep a copy of, to show it again while the server is unreachable.
OFFLINE_HEADER = "Backstop-Offline"
# Whose page this is: the service worker drops the pages it kept when another person's page comes.
SCOPE_HEADER = "Backstop-Drafts-Scope"


class DraftsMiddleware:
    """Marks the pages with editors for the service worker, and gives a visitor who types one its signed cookie."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if is_draft_page(request) and response.status_code == 200:
            response[OFFLINE_HEADER] = "keep"
        if is_draft_page(request) or made_visitor_id(request):
            remember_visitor(request, response)
        if response.get("Content-Type", "").startswith("text/html"):
            response[SCOPE_HEADER] = owner_scope(draft_owner(request))
        return response
