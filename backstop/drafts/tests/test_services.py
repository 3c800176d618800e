"""The server's rules for drafts: versions, conflicts, idempotent saves, retention. Run on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from backstop.drafts.models import Draft
from backstop.drafts.services import (
    DraftConflict,
    delete_expired_drafts,
    discard_draft,
    get_draft,
    save_draft,
)
from backstop.lib.errors import InvalidInput
from backstop.runtime import registry

ANN, BOB = "user:1", "user:2"


def _save(text: str, *, base: int, owner: str = ANN, surface: str = "note:7", save_id: uuid.UUID | None = None):
    return save_draft(owner=owner, surface=surface, fields={"body": text}, base_version=base,
                      save_id=save_id or uuid.uuid4(), device="tab-1")


@pytest.mark.django_db
def test_it_starts_a_draft_at_version_one_and_counts_each_save() -> None:
    assert _save("Hel", base=0).version == 1
    assert _save("Hello", base=1).version == 2
    assert _save("Hello there", base=2).version == 3
    draft = get_draft(owner=ANN, surface="note:7")
    assert draft is not None
    assert (draft.fields, draft.version, draft.device) == ({"body": "Hello there"}, 3, "tab-1")


@pytest.mark.django_db
def test_it_refuses_a_save_typed_on_an_older_version_and_hands_back_the_other_text() -> None:
    _save("from tab A", base=0)
    _save("from tab A, more", base=1)
    with pytest.raises(DraftConflict) as conflict:
        _save("from tab B", base=1)  # tab B loaded version 1 and never saw version 2
    assert conflict.value.current.version == 2
    assert conflict.value.current.fields == {"body": "from tab A, more"}
    with pytest.raises(DraftConflict):
        _save("a second new draft", base=0)  # a new draft where one exists is a conflict too
    draft = get_draft(owner=ANN, surface="note:7")
    assert draft is not None and draft.fields == {"body": "from tab A, more"}  # nothing was overwritten


@pytest.mark.django_db
def test_it_answers_a_repeated_save_id_without_applying_it_again() -> None:
    first = uuid.uuid4()
    assert _save("v1", base=0, save_id=first).version == 1
    again = _save("v1", base=0, save_id=first)  # its answer was lost in an outage: the browser sends it again
    assert (again.version, again.replayed) == (1, True)
    second = uuid.uuid4()
    assert _save("v2", base=1, save_id=second).version == 2
    assert (_save("v2", base=1, save_id=second).version, _save("v2", base=1, save_id=second).replayed) == (2, True)
    draft = get_draft(owner=ANN, surface="note:7")
    assert draft is not None and (draft.version, draft.fields) == (2, {"body": "v2"})


@pytest.mark.django_db
def test_it_never_applies_an_old_save_again_once_another_one_followed_it() -> None:
    first = uuid.uuid4()
    _save("v1 from tab A", base=0, save_id=first)
    _save("v2 from tab B", base=1)
    with pytest.raises(DraftConflict) as late:  # tab A's first save, sent again late: the person chooses
        _save("v1 from tab A", base=0, save_id=first)
    assert late.value.current.fields == {"body": "v2 from tab B"}
    draft = get_draft(owner=ANN, surface="note:7")
    assert draft is not None and (draft.version, draft.fields) == (2, {"body": "v2 from tab B"})


@pytest.mark.django_db
def test_it_takes_a_save_that_meets_its_own_text_as_saved_not_as_a_conflict() -> None:
    _save("same words", base=0)
    result = _save("same words", base=0)  # another tab typed exactly the same: nothing to choose between
    assert (result.version, result.replayed) == (1, True)


@pytest.mark.django_db
def test_it_gives_another_owner_using_the_same_save_id_their_own_draft_and_nothing_else() -> None:
    shared = uuid.uuid4()
    _save("Ann's private text", base=0, save_id=shared)
    result = _save("Bob's text", base=0, owner=BOB, save_id=shared)
    assert (result.version, result.replayed) == (1, False)
    assert get_draft(owner=ANN, surface="note:7").fields == {"body": "Ann's private text"}  # type: ignore[union-attr]
    assert get_draft(owner=BOB, surface="note:7").fields == {"body": "Bob's text"}  # type: ignore[union-attr]


@pytest.mark.django_db
def test_it_starts_again_a_draft_sent_from_another_tab_from_the_version_the_save_names() -> None:
    _save("first", base=0)
    _save("second", base=1)
    assert discard_draft(owner=ANN, surface="note:7")  # tab A sent the form
    assert _save("tab B goes on typing", base=2).version == 3  # nothing lost, and tab B's versions keep counting
    assert not discard_draft(owner=BOB, surface="note:7")


@pytest.mark.django_db
def test_it_keeps_drafts_for_30_days_and_then_deletes_them() -> None:
    now = timezone.now()
    _save("old", base=0, surface="note:1")
    _save("recent", base=0, surface="note:2")
    Draft.objects.filter(surface="note:1").update(updated_at=now - dt.timedelta(days=30, minutes=1))
    Draft.objects.filter(surface="note:2").update(updated_at=now - dt.timedelta(days=29, hours=23))
    assert delete_expired_drafts(now=now) == 1
    assert list(Draft.objects.values_list("surface", flat=True)) == ["note:2"]
    assert delete_expired_drafts(now=now + dt.timedelta(hours=2)) == 1  # 30 days after its last save
    assert not Draft.objects.exists()


@pytest.mark.django_db
def test_it_keeps_each_owners_drafts_apart() -> None:
    _save("Ann's", base=0)
    assert get_draft(owner=BOB, surface="note:7") is None
    assert _save("Bob's", base=0, owner=BOB).version == 1  # the same surface, another person: no conflict
    draft = get_draft(owner=ANN, surface="note:7")
    assert draft is not None and draft.fields == {"body": "Ann's"}


@pytest.mark.django_db
@pytest.mark.parametrize("surface", ["", "Contact", "contact:", "a" * 41, "note:1:2", "note/1", "../x", "ping"])
def test_it_refuses_a_surface_that_is_not_a_short_name(surface: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        _save("x", base=0, surface=surface)
    assert set(refused.value.errors) == {"surface"}


@pytest.mark.django_db
@pytest.mark.parametrize("fields", [{"a b": "x"}, {"body": 3}, {f"f{i}": "" for i in range(21)},
                                    {"body": "x" * 50_001}, {"body": "bell \x07"}, ["body"]])
def test_it_refuses_fields_that_are_not_a_few_named_texts(fields: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        save_draft(owner=ANN, surface="contact", fields=fields, base_version=0, save_id=uuid.uuid4())  # type: ignore[arg-type]
    assert set(refused.value.errors) == {"fields"}
    assert not Draft.objects.exists()


@pytest.mark.django_db
def test_it_limits_how_many_drafts_one_owner_keeps(settings: object) -> None:
    settings.DRAFT_MAX_PER_OWNER = 3  # type: ignore[attr-defined]
    for n in range(3):
        _save("x", base=0, surface=f"note:{n}")
    with pytest.raises(InvalidInput):
        _save("x", base=0, surface="note:9")
    assert _save("still saves an existing one", base=1, surface="note:0").version == 2


def test_it_registers_the_cleanup_with_the_runtime() -> None:
    jobs = {job.name: job for job in registry.periodic_jobs()}
    assert "draft-cleanup" in jobs
    assert jobs["draft-cleanup"].every_seconds() == 3600.0
