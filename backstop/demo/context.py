from typing import Any

from django.conf import settings
from django.http import HttpRequest


def demo_mode(request: HttpRequest) -> dict[str, Any]:
    return {"demo_pages": settings.DEMO_PAGES}
