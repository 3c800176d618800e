"""The identity of an email address: which typed addresses are one customer.

Two addresses are one customer when they reach one mailbox as far as we can tell without asking its server: the same
text after Unicode normalisation, with the local part case-folded (almost every server ignores case there) and the
domain in its IDNA ASCII form. The domain is mapped by IDNA 2008 with UTS-46 *non-transitional* processing, as browsers
and registries do today: ``bücher.example`` and ``xn--bcher-kva.example`` are one domain, while ``straße.de`` keeps its
ß and stays a different domain from ``strasse.de``.
"""

from __future__ import annotations

import unicodedata

import idna


def normalise_email(value: str) -> str:
    """NFKC, trimmed, domain lower-cased (the local part is kept as typed for display)."""
    text = unicodedata.normalize("NFKC", value).strip()
    local, at, domain = text.rpartition("@")
    return f"{local}{at}{domain.lower()}" if at else text


def domain_key(domain: str) -> str:
    """The domain as DNS knows it: lower-case ASCII, Unicode labels in their ``xn--`` form.

    A domain IDNA refuses (an empty label, a label too long, a character IDNA 2008 does not allow) still gets a key,
    case-folded as before IDNA was applied, so a key never raises and an address too long before is too long still.
    """
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return domain.casefold()


def email_key(value: str) -> str:
    """The identity of an address: what two signups must not share, and what every lookup of a customer uses."""
    local, at, domain = normalise_email(value).rpartition("@")
    if not at:
        return domain.casefold()
    return f"{local.casefold()}@{domain_key(domain)}"
