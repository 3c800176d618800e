from __future__ import annotations

from typing import Any


def client_ip(request: Any) -> str:
    """The peer address. Behind a proxy, set it from a trusted header in the proxy, not here."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")
