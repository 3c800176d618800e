"""docs/state_matrix.md is the message catalogues as they are: a message changed without regenerating it fails here."""

from __future__ import annotations

from backstop.accounts.messages import CATALOGUE
from backstop.support import state_matrix
from backstop.support.messages import ACTIONS, CONTACT_FINDINGS


def test_it_keeps_the_state_matrix_in_docs_as_the_catalogues_render_it() -> None:
    rendered = state_matrix.render_state_matrix()
    on_disk = state_matrix.PATH.read_text(encoding="utf-8") if state_matrix.PATH.exists() else ""
    assert on_disk == rendered, (
        "docs/state_matrix.md differs from the message catalogues: run `make state-matrix` and commit the result")


def test_it_shows_every_catalogued_message_in_some_cell() -> None:
    rendered = " ".join(state_matrix.render_state_matrix().split())
    for notice in CATALOGUE.values():
        assert " ".join(notice.text.split()) in rendered
    for text in ACTIONS.values():
        for sentence in (text.done, text.already):
            if sentence and "{" not in sentence:
                assert sentence in rendered, sentence
    for finding_text in CONTACT_FINDINGS.values():
        assert " ".join(finding_text.split()) in rendered
