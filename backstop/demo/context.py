from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def _faults_text() -> str:
    from backstop.demo.tour import current_faults, faults_text

    try:
        return faults_text(current_faults())
    except DatabaseError:  # a page drawn while the database is away (an error page) still renders
        return ""


def demo_mode(request: HttpRequest) -> dict[str, Any]:
    """``demo_pages``, and in the demo the providers' faults as the header shows them (read only when shown)."""
    if not settings.DEMO_PAGES:
        return {"demo_pages": False}
    return {"demo_pages": True, "demo_faults": SimpleLazyObject(_faults_text)}
