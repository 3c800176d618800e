"""Known devices: a signed cookie a browser gets when it signs in, so that its owner is never rate-limited by a
stranger's failures against the same account (OWASP's "device cookies" against targeted lockout).

The cookie proves only that this browser signed in to this account before; the password or a code is still needed
every time. Its failures spend its own budget (``DEVICE_LIMIT`` in ``signin``), so a stolen cookie buys no more guesses
than a stranger's address.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing

DEVICE_COOKIE = "bk_device"
_SALT = "backstop.accounts.devices"
# As long as a person plausibly keeps a browser between sign-ins; a cookie older than this is simply not known.
DEVICE_MAX_AGE_SECONDS = 180 * 24 * 3600


@dataclass(frozen=True)
class KnownDevice:
    account_id: int
    device_id: str  # random, names this browser's own failure budget


def issue_device_token(*, account_id: int) -> str:
    return signing.dumps({"a": account_id, "d": secrets.token_urlsafe(12)}, salt=_SALT)


def read_device_token(*, token: str, account_id: int | None) -> KnownDevice | None:
    """The device, when ``token`` is a valid cookie of ours for ``account_id``; None otherwise (forged, expired, or
    another account's)."""
    if not token or account_id is None:
        return None
    try:
        value: Any = signing.loads(token, salt=_SALT, max_age=DEVICE_MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("a") != account_id or not isinstance(value.get("d"), str):
        return None
    return KnownDevice(account_id=account_id, device_id=value["d"])


# The browser that asked for a sign-in code: a random token (no account in it), whose hash is kept on each code that
# browser asked for. A code typed in the browser that asked for it has tries of its own there (allauth binds a code to
# the session that asked for it): strangers who spent the account's budget for wrong codes cannot stop it.
CODE_BROWSER_COOKIE = "bk_code_browser"
_CODE_BROWSER_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")


def code_browser_token(cookies: dict[str, str]) -> str:
    """The browser's code-asking token from its cookies, or a new one when it has none (or not one of ours)."""
    token = cookies.get(CODE_BROWSER_COOKIE, "")
    return token if _CODE_BROWSER_TOKEN.match(token) else secrets.token_urlsafe(24)


def hash_code_browser(token: str) -> str:
    """What a code keeps of the browser that asked for it ("" for none, or a token not of our making)."""
    return hashlib.sha256(token.encode()).hexdigest() if _CODE_BROWSER_TOKEN.match(token) else ""


def remember_code_browser(response: Any, *, token: str) -> None:
    response.set_cookie(CODE_BROWSER_COOKIE, token, max_age=settings.VERIFICATION_CODE_TTL_SECONDS, httponly=True,
                        samesite="Lax", secure=settings.SESSION_COOKIE_SECURE)


def remember_device(response: Any, *, account_id: int) -> None:
    """Mark the browser behind ``response`` as a known device of the account it just signed in to."""
    response.set_cookie(DEVICE_COOKIE, issue_device_token(account_id=account_id), max_age=DEVICE_MAX_AGE_SECONDS,
                        httponly=True, samesite="Lax", secure=settings.SESSION_COOKIE_SECURE)
