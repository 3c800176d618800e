"""The audit's before/after, as the lines of what changed."""

from __future__ import annotations

from backstop.lib.diffs import Change, changes


def test_it_lists_only_what_changed_by_dotted_path_in_words() -> None:
    before = {"case": {"state": "open", "harm": 20, "assigned_to": None, "kinds": ["setup_stalled"]},
              "steps": {"workspace": "failed", "welcome_email": "done"}, "account": {"email_verified": False}}
    after = {"case": {"state": "open", "harm": 20, "assigned_to": "kim@backstop.localhost", "kinds": []},
             "steps": {"workspace": "done", "welcome_email": "done"}, "account": {"email_verified": True},
             "workspace": "ws_42"}

    assert changes(before, after) == [
        Change("case.assigned_to", "none", "kim@backstop.localhost"),
        Change("case.kinds", "setup_stalled", "none"),
        Change("steps.workspace", "failed", "done"),
        Change("account.email_verified", "no", "yes"),
        Change("workspace", "none", "ws_42"),
    ]


def test_it_says_nothing_changed_for_equal_or_empty_snapshots() -> None:
    assert changes({"case": {"state": "open"}}, {"case": {"state": "open"}}) == []
    assert changes(None, {}) == []
    assert changes({"payments": {"orders": [{"ref": "BK-1", "refunded": False}]}}, {}) == [
        Change("payments.orders", "(ref: BK-1; refunded: no)", "none")]
