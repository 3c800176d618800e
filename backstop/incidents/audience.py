"""Who sees an incident's banner: the customers it hurts now, staff, and anyone on a page of the failing capability.

The status file carries, per live incident, the banner tokens of the customers it hurts now (``AffectedCustomer`` not
recovered): an HMAC of the account id under a key derived from SECRET_KEY, never an id or an address in clear. A page
renders the signed-in visitor's token (``banner_token``) and the banner's script sends it in a header to
``/status/banner.json``, which answers from the file alone (``public.banner_json``): no session, no database.

Staff share one token (they see every live incident). A page where a customer is about to meet the capability (setup,
checkout, contact) names itself (``PAGE_CAPABILITIES``): an incident of one of its capabilities is shown there to
every visitor (the contact page: every incident). An incident nothing counts the customers of (opened by hand, no
cause) is shown to everyone, signed in or not: we cannot say whom it hurts.
"""

from __future__ import annotations

from typing import Any

from django.utils.crypto import salted_hmac

BANNER_TOKEN_HEADER = "X-Banner-Token"
BANNER_TOKEN_ENVIRON = "HTTP_X_BANNER_TOKEN"
_SALT = "backstop.incidents.banner-audience"
TOKEN_LENGTH = 32

# Every capability: the contact page is where a visitor goes when anything fails them, so every live incident is
# shown there (it is also the ticket the banner saves).
EVERY_CAPABILITY = "*"
# The pages that meet a capability, by the name their status link gives them: an incident of one of these
# capabilities shows its banner to every visitor of the page.
PAGE_CAPABILITIES: dict[str, frozenset[str]] = {
    "setup": frozenset({"workspace", "email"}),  # the setup steps' providers (accounts.STEP_PROVIDERS)
    "checkout": frozenset({"payments"}),
    "contact": frozenset({EVERY_CAPABILITY}),
}


def _token(value: str) -> str:
    return salted_hmac(_SALT, value, algorithm="sha256").hexdigest()[:TOKEN_LENGTH]


def account_token(account_id: int) -> str:
    return _token(f"account:{account_id}")


def staff_token() -> str:
    return _token("staff")


def token_for(user: Any) -> str:
    """The token a page renders for its visitor: "" when nobody is signed in."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return staff_token() if user.is_staff else account_token(user.pk)


def capabilities_of_page(page: str) -> frozenset[str]:
    return PAGE_CAPABILITIES.get(page, frozenset())


def shown_to(incident: dict[str, Any], *, token: str, capabilities: frozenset[str], is_staff: bool) -> bool:
    """Whether one live incident of the status file is shown to this visitor on this page."""
    if is_staff or EVERY_CAPABILITY in capabilities or incident.get("capability") in capabilities:
        return True
    if not incident.get("audience_known", False):
        return True
    return bool(token) and token in incident.get("audience", ())
