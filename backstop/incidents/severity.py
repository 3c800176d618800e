"""The severity rule, written once: the desk shows it beside every incident (``messages.SEVERITY_RULE``).

- SEV-1: a customer lost money (charged without access), or at least INCIDENT_SEV1_CUSTOMERS customers are affected.
- SEV-2: a customer is locked out (cannot sign in, or is waiting for a workspace), or at least
  INCIDENT_SEV2_CUSTOMERS are affected.
- SEV-3: everything else: something is degraded for a few customers.

The rule only raises an incident's severity while it is live (customers who recover do not make it smaller than it
was); a person may set it by hand, and then the rule leaves it alone.
"""

from __future__ import annotations

from backstop.attention.models import Harm
from backstop.incidents.models import Severity


def severity_for(*, worst_harm: int | None, customers: int, sev1_customers: int, sev2_customers: int) -> Severity:
    if (worst_harm is not None and worst_harm >= Harm.MONEY) or customers >= sev1_customers:
        return Severity.SEV1
    if (worst_harm is not None and worst_harm >= Harm.LOCKED_OUT) or customers >= sev2_customers:
        return Severity.SEV2
    return Severity.SEV3


def raised(current: int, computed: int) -> int:
    """The more severe of the two (SEV-1 is the smallest number)."""
    return min(current, computed)
