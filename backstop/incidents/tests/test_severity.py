"""The written severity rule: harm first, then how many customers."""

from __future__ import annotations

import pytest

from backstop.attention.models import Harm
from backstop.incidents.models import Severity
from backstop.incidents.severity import raised, severity_for

RULE = {"sev1_customers": 50, "sev2_customers": 5}


@pytest.mark.parametrize(("worst_harm", "customers", "expected"), [
    (None, 0, Severity.SEV3),
    (Harm.DEGRADED, 4, Severity.SEV3),
    (Harm.DEGRADED, 5, Severity.SEV2),
    (Harm.LOCKED_OUT, 1, Severity.SEV2),
    (Harm.LOCKED_OUT, 49, Severity.SEV2),
    (Harm.LOCKED_OUT, 50, Severity.SEV1),
    (Harm.DEGRADED, 50, Severity.SEV1),
    (Harm.MONEY, 1, Severity.SEV1),
    (Harm.QUESTION, 3, Severity.SEV3),
])
def test_it_grades_by_the_worst_harm_and_the_count(worst_harm: int | None, customers: int,
                                                     expected: Severity) -> None:
    assert severity_for(worst_harm=worst_harm, customers=customers, **RULE) == expected


def test_it_only_ever_raises_a_severity() -> None:
    assert raised(Severity.SEV2, Severity.SEV1) == Severity.SEV1
    assert raised(Severity.SEV1, Severity.SEV3) == Severity.SEV1
