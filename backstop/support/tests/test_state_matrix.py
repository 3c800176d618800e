"""docs/state_matrix.md is the message catalogues as they are: a message changed without regenerating it fails here."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client

from backstop.accounts import messages
from backstop.accounts.messages import CATALOGUE
from backstop.accounts.models import Account, AccountState
from backstop.support import state_matrix
from backstop.support.messages import ACTIONS, CONTACT_FINDINGS


def test_it_keeps_the_state_matrix_in_docs_as_the_catalogues_render_it() -> None:
    rendered = state_matrix.render_state_matrix()
    on_disk = state_matrix.PATH.read_text(encoding="utf-8") if state_matrix.PATH.exists() else ""
    assert on_disk == rendered, (
        "docs/state_matrix.md differs from the message catalogues: run `make state-matrix` and commit the result")


def test_it_shows_every_catalogued_message_in_some_cell() -> None:
    rendered = " ".join(state_matrix.render_state_matrix().split())
    for key in state_matrix.shown_customer_notices():
        assert " ".join(CATALOGUE[key].text.split()) in rendered, key
    for text in ACTIONS.values():
        for sentence in (text.done, text.already):
            if sentence and "{" not in sentence:
                assert sentence in rendered, sentence
    for finding_text in CONTACT_FINDINGS.values():
        assert " ".join(finding_text.split()) in rendered


@pytest.mark.django_db
def test_it_renders_the_answer_the_signup_service_gives_to_a_same_password_signup_in_each_state(client: Client) -> None:
    """Not a parallel table: each resignup cell is what /api/signup answers when the account is in that state."""
    rows = _customer_rows(state_matrix.render_state_matrix())
    for state in AccountState:
        email = f"{state.value}@example.com"
        # Written directly, in the state, with no setup steps (nothing for a resumed signup to start).
        Account.objects.create(email=email, email_key=email, name="Ann Lee", company="Acme", phone="+1 415 555 0100",
                               password=make_password("correct horse battery"), state=state)
        answer = client.post("/api/signup", {"name": "Ann Lee", "email": email, "phone": "+1 415 555 0100",
                                             "company": "Acme", "password": "correct horse battery"},
                             content_type="application/json")
        cell = rows["sign up again, same password"][state.value]
        if answer.status_code == 409:
            assert answer.json()["code"] == "email_taken"
            assert cell == f"409 `email_taken`: {messages.EMAIL_TAKEN.text}"
        else:
            assert answer.status_code == 200, answer.content
            assert cell == " ".join(messages.notice(state, "resignup").text.split())
    assert "we recognised your password" not in rows["sign up again, same password"][AccountState.ACTIVE.value]


def test_it_has_a_column_for_each_setup_page_button_and_for_confirming_new_details() -> None:
    rows = _customer_rows(state_matrix.render_state_matrix())
    for label in ("press “Try again now” (`POST /setup/retry`)",
                  "press “Send the welcome email again” (the banner's button, the same retry)"):
        assert rows[label][AccountState.SETTING_UP.value] == (
            f"page: {messages.RETRY_STARTED.text} API: {messages.notice(AccountState.SETTING_UP, 'setup_page').text}")
    details = rows["confirm the new details typed at a same-password signup (`/account/details`)"]
    assert messages.DETAILS_NOTHING_PENDING.text in details[AccountState.ACTIVE.value]


def _customer_rows(rendered: str) -> dict[str, dict[str, str]]:
    """The account state x customer action table: each action's line, its cells by state."""
    table = rendered.split("## Account state x customer action")[1].split("\n## ")[0]
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    states = [cell.strip(" `") for cell in lines[0].strip("|").split(" | ")[1:]]
    rows = {}
    for line in lines[1:]:
        label, *cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows[label] = dict(zip(states, cells, strict=True))
    return rows
