"""The one read model of an account's setup, used by the pages, the JSON API and (later) support."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from backstop.accounts.messages import PROVIDER_NAMES, STEP_STATUS_TEXT, VERIFY_EMAIL_BANNER, notice
from backstop.accounts.models import Account, StepName


@dataclass(frozen=True)
class StepProgress:
    name: str
    label: str
    status: str
    status_text: str
    attempts: int
    last_error: str
    next_attempt_at: dt.datetime | None


@dataclass(frozen=True)
class SetupProgress:
    state: str
    state_label: str
    steps: list[StepProgress]
    email_verified: bool
    banner: str
    message: str
    can_retry: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status_text(step: Any) -> str:
    next_attempt = step.next_attempt_at.strftime("%H:%M:%S UTC") if step.next_attempt_at else "soon"
    return STEP_STATUS_TEXT[step.status].format(
        attempts=step.attempts, error=step.last_error or "no answer", next_attempt=next_attempt,
        provider=PROVIDER_NAMES[step.name],
    )


def setup_progress(account: Account, *, action: str = "setup_page") -> SetupProgress:
    steps = [
        StepProgress(
            name=step.name, label=StepName(step.name).label, status=step.status, status_text=_status_text(step),
            attempts=step.attempts, last_error=step.last_error, next_attempt_at=step.next_attempt_at,
        )
        for step in account.setup_steps.all()
    ]
    verified = account.email_verified_at is not None
    return SetupProgress(
        state=account.state,
        state_label=account.get_state_display(),
        steps=steps,
        email_verified=verified,
        banner="" if verified else VERIFY_EMAIL_BANNER.format(email=account.email),
        message=notice(account.state, action).text,
        can_retry=any(step.status != "done" for step in steps),
    )
