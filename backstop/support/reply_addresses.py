"""The addresses and Message-IDs of the emails a case sends, made so that an answer finds its case again and a
stranger cannot aim mail at another customer's case: both carry an HMAC of the case id (keyed by SECRET_KEY).

``case+<case_id>.<token>@<BACKSTOP_INBOUND_DOMAIN>`` is the Reply-To; ``<c<case_id>.<tag>.<mac>@<domain>>`` is the
Message-ID (``tag`` from the outbox key, so a retried send keeps its id).
"""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

TOKEN_LENGTH = 12
_ADDRESS = re.compile(r"^case\+(\d{1,18})\.([0-9a-f]{12})@(.+)$", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"^<?c(\d{1,18})\.([0-9a-f]{12})\.([0-9a-f]{12})@([^>]+)>?$", re.IGNORECASE)


def _mac(*parts: str) -> str:
    return salted_hmac("backstop.support.reply-address", ".".join(parts), algorithm="sha256").hexdigest()[:TOKEN_LENGTH]


def reply_address(case_id: int) -> str:
    return f"case+{case_id}.{_mac('address', str(case_id))}@{settings.INBOUND_DOMAIN}"


def case_message_id(*, case_id: int, key: str) -> str:
    tag = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"<c{case_id}.{tag}.{_mac('message', str(case_id), tag)}@{settings.INBOUND_DOMAIN}>"


def case_of_address(address: str) -> int | None:
    """The case a reply address names, when its token verifies (and its domain is ours); else None."""
    match = _ADDRESS.match(address.strip().strip("<>"))
    if match is None or match.group(3).lower() != settings.INBOUND_DOMAIN:
        return None
    case_id, token = match.group(1), match.group(2).lower()
    return int(case_id) if constant_time_compare(token, _mac("address", case_id)) else None


def case_of_message_id(message_id: str) -> int | None:
    """The case a Message-ID we made names, when its MAC verifies; else None (not ours, or forged)."""
    match = _MESSAGE_ID.match(message_id.strip())
    if match is None or match.group(4).lower() != settings.INBOUND_DOMAIN:
        return None
    case_id, tag, mac = match.group(1), match.group(2).lower(), match.group(3).lower()
    return int(case_id) if constant_time_compare(mac, _mac("message", case_id, tag)) else None


def case_email_headers(*, case_id: int, key: str) -> dict[str, str]:
    """What notify.create_email needs to send an email from this case: its Reply-To and its Message-ID."""
    return {"reply_to": reply_address(case_id), "message_id": case_message_id(case_id=case_id, key=key)}
