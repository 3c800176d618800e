"""`backstop snapshot --sanitize`: a copy with no original email, name or phone, and the shapes of the original."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, connections, models

from backstop.accounts.models import Account
from backstop.drafts.models import Draft
from backstop.lib.email_identity import email_key
from backstop.notify.models import Message
from backstop.preflight.masking import character_class, mask
from backstop.preflight.sanitize import (
    EMPTIED,
    NOT_PERSONAL,
    Kind,
    PersonalField,
    classified_field_types,
    personal_fields,
    snapshot_connection,
    take_snapshot,
)

KEY = b"test-snapshot-key"

CUSTOMERS = [
    # email, name, company, phone
    ("Ada.Lovelace@Analytical.example", "Ada Lovelace", "ACME Corp", "+44 20 7946 0958"),
    ("grace.hopper@navy.example", "Grace Hopper", "Acme Corp", "+1 (555) 010-7788"),
    ("david@שלום.example", "דוד כהן", "חברת שלום בע״מ", "+972 52-123-4567"),
    ("layla@example.ae", "ليلى العربي", "شركة الأمل", "+971 50 765 4321"),
    ("zoe.unicorn@example.com", "Zoë 🦄🚀 Ünicorn", "Ünicorn 🦄 GmbH", ""),
    ("w" * 60 + "@long.example", "Wolfeschlegelsteinhausenbergerdorff " * 4, "A" * 150, "0049 30 1234567"),
]


def _make_customers() -> list[Account]:
    return [
        Account.objects.create(email=email, email_key=email_key(email), name=name, company=company, phone=phone,
                               password="argon2$not-a-real-hash")
        for email, name, company, phone in CUSTOMERS
    ]


def test_it_masks_each_character_by_one_of_its_class() -> None:
    for value in ("Ada.Lovelace@Analytical.example", "דוד כהן", "ليلى العربي", "Zoë 🦄🚀 Ünicorn", "+44 20 7946 0958",
                  "山田 太郎", "Ирина Петрова", "٠١٢٣ رقم"):
        masked = mask(value, key=KEY)
        assert masked != value
        assert len(masked) == len(value) and len(masked.encode()) == len(value.encode())
        for before, after in zip(value, masked, strict=True):
            assert unicodedata.bidirectional(after) == unicodedata.bidirectional(before), (value, masked)
            assert character_class(after)[1:] == character_class(before)[1:], (before, after)
            if not before.isalnum() and unicodedata.category(before) != "So":
                assert after == before  # structure: @ . + spaces, punctuation


def test_it_keeps_case_only_duplicates_case_only_and_others_apart() -> None:
    upper, lower, other = mask("ACME Corp", key=KEY), mask("Acme Corp", key=KEY), mask("Acme Corq", key=KEY)
    assert upper != lower and upper.lower() == lower.lower()
    assert [char.isupper() for char in upper] == [char.isupper() for char in "ACME Corp"]
    assert [char.isupper() for char in lower] == [char.isupper() for char in "Acme Corp"]
    assert other.lower() != lower.lower()
    assert mask("Acme Corp", key=KEY) == lower  # deterministic
    assert mask("Acme Corp", key=b"another key") != lower  # and keyed


def test_it_folds_the_dotted_capital_i_as_the_database_lowers_it() -> None:
    # PostgreSQL (libc): lower('İzmir') = 'izmir', a case-only duplicate; Python's "İ".lower() is two characters.
    dotted, plain = mask("İzmir Ltd", key=KEY), mask("izmir ltd", key=KEY)
    assert dotted.lower() == plain.lower() and dotted[0].isupper() and dotted[0].isascii()
    assert len(dotted) == len("İzmir Ltd")
    # SQLite's lower() folds ASCII only: there the two are different values, and their masks stay apart.
    dotted, plain = (mask(value, key=KEY, dotted_capital_i_lowers_to_i=False) for value in ("İzmir Ltd", "izmir ltd"))
    assert dotted.lower() != plain.lower()


def test_it_classifies_every_text_column_of_every_model() -> None:
    personal = {(entry.model, entry.field) for entry in personal_fields()}
    declared = {(model, field) for model, fields in NOT_PERSONAL.items() for field in fields}
    assert not personal & declared, "a column is both personal and not"
    assert not {model for model, _ in personal | declared} & set(EMPTIED), "an emptied table's columns need no entry"
    columns = {
        (model._meta.label, field.name)
        for model in apps.get_models() for field in model._meta.get_fields()
        if isinstance(field, classified_field_types()) and model._meta.label not in EMPTIED
    }
    assert columns - personal - declared == set(), "classify these in backstop/preflight/sanitize.py"
    assert (personal | declared) - columns == set(), "the registry names columns no model has"
    for label in EMPTIED:
        apps.get_model(label)  # names a model that exists
    for entry in personal_fields():
        assert isinstance(entry.kind, Kind)
        field = apps.get_model(entry.model)._meta.get_field(entry.field)
        # Uploaded content is masked as bytes or a file's name, never as text (which would crash or keep it).
        if isinstance(field, models.BinaryField):
            assert entry.kind is Kind.BYTES, entry
        elif isinstance(field, models.FileField):
            assert entry.kind is Kind.FILE, entry


def _all_personal_values(using: str) -> dict[tuple[str, str, Any], Any]:
    values: dict[tuple[str, str, Any], Any] = {}
    for entry in personal_fields():
        model = apps.get_model(entry.model)
        if model._meta.db_table not in connections[using].introspection.table_names():
            continue
        for pk, value in model._base_manager.using(using).values_list("pk", entry.field):
            values[(entry.model, entry.field, pk)] = value
    return values


@pytest.mark.django_db(transaction=True)
def test_it_writes_a_sanitized_copy_with_the_same_shapes(copy_target: str, tmp_path: Path) -> None:
    customers = _make_customers()
    Message.objects.create(to=CUSTOMERS[0][0], key="welcome:1", channel="email", kind="welcome",
                           subject="Welcome, Ada Lovelace", text="Hello Ada Lovelace, call +44 20 7946 0958")
    draft = Draft.objects.create(owner="user:1", surface="contact", fields={"body": "Ada Lovelace here", "tries": 2})
    source_before = _all_personal_values("default")

    result = take_snapshot(target=copy_target, sanitize=True, key=KEY)

    assert result.sanitized and result.masked_values > 0
    assert _all_personal_values("default") == source_before, "the source database was changed"
    config = {**connection.settings_dict, "NAME": copy_target}
    config["OPTIONS"] = {k: v for k, v in config.get("OPTIONS", {}).items() if k != "pool"}
    with snapshot_connection(config) as alias:
        copied = _all_personal_values(alias)
        assert copied.keys() == source_before.keys()
        for where, original in source_before.items():
            masked = copied[where]
            if original is None or original == "":
                assert masked == original, where  # NULLs and empties stay so
            elif isinstance(original, str):
                assert masked != original and len(masked) == len(original), where
        accounts = {account.pk: account for account in Account.objects.using(alias).all()}
        masked_draft = Draft.objects.using(alias).get(pk=draft.pk).fields
        assert masked_draft["tries"] == 2 and set(masked_draft) == {"body", "tries"}  # keys and numbers kept
        assert len(masked_draft["body"]) == len("Ada Lovelace here") and "Lovelace" not in masked_draft["body"]
        copied_texts = "\n".join(str(value) for value in copied.values())
    for email, name, company, phone in CUSTOMERS:
        for original in (email, email_key(email), name, company, phone):
            if original:
                assert original not in copied_texts
    acme, other_acme = accounts[customers[0].pk], accounts[customers[1].pk]
    assert acme.company != other_acme.company and acme.company.lower() == other_acme.company.lower()
    for account in accounts.values():
        assert account.email_key == email_key(account.email) or not account.email.isascii()
    if connection.vendor == "sqlite":
        # Not even the copy's free pages still hold an original value.
        raw = Path(copy_target).read_bytes()
        for email, name, _, phone in CUSTOMERS:
            assert email.encode() not in raw and name.encode() not in raw and (not phone or phone.encode() not in raw)


@pytest.mark.django_db(transaction=True)
def test_it_refuses_to_overwrite_and_says_where_it_wrote(copy_target: str, capsys: pytest.CaptureFixture[str]) -> None:
    _make_customers()
    call_command("snapshot", "--sanitize", "--out", copy_target)
    out = capsys.readouterr().out
    assert f"sanitized snapshot: {copy_target}" in out and "backstop preflight --source " in out
    if connection.vendor == "sqlite":
        with pytest.raises(Exception, match="never overwrites"):
            call_command("snapshot", "--out", copy_target)


@pytest.mark.django_db(transaction=True)
def test_it_lets_a_staging_preflight_find_the_case_only_duplicates_without_the_names(
    copy_target: str, tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backstop.preflight.runner import run_preflight
    from backstop.preflight.tests.pending_migrations import make_pending
    from backstop.preflight.tests.test_postmortem import CASEFOLD_UNIQUE

    _make_customers()  # "ACME Corp" and "Acme Corp": production's case-only duplicate
    take_snapshot(target=copy_target, sanitize=True, key=KEY)
    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))
    params = connection.settings_dict
    source = copy_target if connection.vendor == "sqlite" else (
        f"postgres://{params['USER'] or 'postgres'}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/"
        f"{copy_target}")

    run = run_preflight(source=source)

    assert not run.passed
    (duplicates,) = run.report["migrations"][0]["checks"]
    companies = sorted(row["values"]["company"] for row in duplicates["rows"])
    assert len(companies) == 2 and companies[0].lower() == companies[1].lower()
    assert "acme corp" not in {company.lower() for company in companies}  # masked: the real name never shows


@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_dotted_capital_i_duplicate_exactly_when_the_database_has_it(
    copy_target: str, tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backstop.preflight.runner import run_preflight
    from backstop.preflight.tests.pending_migrations import make_pending
    from backstop.preflight.tests.test_postmortem import CASEFOLD_UNIQUE

    for email, company in (("a@izmir.example", "İzmir Tekstil"), ("b@izmir.example", "izmir tekstil")):
        Account.objects.create(email=email, email_key=email_key(email), name="Ann Lee", company=company)
    with connection.cursor() as cursor:  # how production itself compares them
        cursor.execute("SELECT COUNT(DISTINCT LOWER(company)) FROM accounts_account")
        production_has_duplicate = cursor.fetchone()[0] == 1
    assert production_has_duplicate == (connection.vendor == "postgresql")
    take_snapshot(target=copy_target, sanitize=True, key=KEY)
    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))
    params = connection.settings_dict
    source = copy_target if connection.vendor == "sqlite" else (
        f"postgres://{params['USER'] or 'postgres'}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/"
        f"{copy_target}")

    run = run_preflight(source=source)

    assert run.passed is not production_has_duplicate, run.report


@pytest.mark.django_db(transaction=True)
def test_it_masks_the_values_a_preflight_report_quotes(copy_target: str, tmp_path: Path, settings: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from backstop.preflight.models import GuardOverride, PreflightRun
    from backstop.preflight.runner import run_preflight
    from backstop.preflight.tests.pending_migrations import make_pending
    from backstop.preflight.tests.test_postmortem import CASEFOLD_UNIQUE

    _make_customers()  # "ACME Corp" and "Acme Corp": the preflight's report names both, with their values
    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))
    failed = run_preflight()
    assert not failed.passed and "ACME Corp" in str(failed.report)
    GuardOverride.objects.create(plan_fingerprint=failed.plan_fingerprint, plan=failed.plan, by="ada",
                                 reason="Grace Hopper's account must sign in today")

    take_snapshot(target=copy_target, sanitize=True, key=KEY)

    config = {**connection.settings_dict, "NAME": copy_target}
    config["OPTIONS"] = {k: v for k, v in config.get("OPTIONS", {}).items() if k != "pool"}
    with snapshot_connection(config) as alias:
        report = str(PreflightRun.objects.using(alias).get(pk=failed.pk).report)
        reason = GuardOverride.objects.using(alias).get().reason
    assert "ACME Corp" not in report and "Acme Corp" not in report
    assert "Grace Hopper" not in reason and len(reason) == len("Grace Hopper's account must sign in today")
    if connection.vendor == "sqlite":
        raw = Path(copy_target).read_bytes()
        assert b"ACME Corp" not in raw and b"Grace Hopper" not in raw


@pytest.mark.django_db(transaction=True)
def test_it_copies_the_orphaned_rows_production_holds(copy_target: str) -> None:
    from django.db import transaction

    from backstop.accounts.models import AccountEvent

    (account,) = _make_customers()[:1]
    orphan = AccountEvent(account_id=account.pk + 1_000_000, kind="signup", text="orphaned by a past bug")
    # A past bug left a row whose account is gone, written with the foreign-key checks off as it was then.
    if connection.vendor == "sqlite":
        with connection.constraint_checks_disabled():
            orphan.save()
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            orphan.save()

    take_snapshot(target=copy_target, sanitize=True, key=KEY)

    config = {**connection.settings_dict, "NAME": copy_target}
    config["OPTIONS"] = {k: v for k, v in config.get("OPTIONS", {}).items() if k != "pool"}
    with snapshot_connection(config) as alias:
        copied = AccountEvent.objects.using(alias).get(pk=orphan.pk)
        assert copied.account_id == orphan.account_id and copied.text != orphan.text
        with connections[alias].cursor() as cursor:  # the copy's schema still forbids new orphans
            constraints = connections[alias].introspection.get_constraints(cursor, AccountEvent._meta.db_table)
        assert any(info["foreign_key"] for info in constraints.values())


@pytest.mark.django_db(transaction=True)
def test_it_leaves_no_unmasked_copy_when_masking_fails(copy_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from backstop.preflight import sanitize

    _make_customers()
    masked_models: list[str] = []
    real_sanitize_model = sanitize._sanitize_model

    def fail_on_the_second_model(model: Any, *args: Any, **kwargs: Any) -> int:
        # What a unique column whose values cannot be masked apart does half-way through (ValueError).
        masked_models.append(model._meta.label)
        if len(masked_models) == 2:
            raise ValueError("cannot mask 1-character values of a unique column apart")
        return real_sanitize_model(model, *args, **kwargs)

    monkeypatch.setattr(sanitize, "_sanitize_model", fail_on_the_second_model)

    with pytest.raises(ValueError, match="cannot mask"):
        take_snapshot(target=copy_target, sanitize=True, key=KEY)

    if connection.vendor == "sqlite":
        assert not Path(copy_target).exists()
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [copy_target])
            assert cursor.fetchone() is None


def _copy_config(copy_target: str) -> dict[str, Any]:
    config = {**connection.settings_dict, "NAME": copy_target}
    config["OPTIONS"] = {k: v for k, v in config.get("OPTIONS", {}).items() if k != "pool"}
    return config


@pytest.mark.django_db(transaction=True)
def test_it_copies_no_session_and_does_not_crash_on_them(copy_target: str, capsys: pytest.CaptureFixture[str]) -> None:
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session

    (ada, *_) = _make_customers()
    keys: list[str] = []
    for number in range(3):  # signed-in browsers: each key is a working sign-in
        store = SessionStore()
        store["_auth_user_id"] = str(ada.pk)
        store["n"] = number
        store.create()
        assert store.session_key is not None
        keys.append(store.session_key)
    assert Session.objects.count() == 3

    call_command("snapshot", "--sanitize", "--out", copy_target)  # masking the key (the primary key) crashed

    assert f"sanitized snapshot: {copy_target}" in capsys.readouterr().out
    assert Session.objects.count() == 3, "production keeps its sessions"
    with snapshot_connection(_copy_config(copy_target)) as alias:
        assert Session.objects.using(alias).count() == 0
        assert Account.objects.using(alias).count() == len(CUSTOMERS)  # the rest of the copy is there
    if connection.vendor == "sqlite":
        raw = Path(copy_target).read_bytes()
        assert not any(key.encode() in raw for key in keys)


UPLOAD = b"%PDF-1.7 passport scan of Ada Lovelace, born 1815 " * 40


@pytest.fixture
def upload_model(transactional_db: Any) -> Any:
    """A model added after the registry was written (as an attachments table would be), listed nowhere in it."""
    meta = type("Meta", (), {"app_label": "preflight", "db_table": "preflight_test_upload"})
    model = type("TestUpload", (models.Model,), {
        "__module__": __name__, "Meta": meta,
        "content": models.BinaryField(null=True), "stored": models.FileField(upload_to="uploads/", blank=True),
    })
    with connection.schema_editor() as editor:
        editor.create_model(model)
    try:
        yield model
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(model)
        del apps.all_models["preflight"]["testupload"]
        apps.clear_cache()


@pytest.mark.django_db(transaction=True)
def test_it_masks_uploaded_bytes_no_one_listed(upload_model: Any, copy_target: str) -> None:
    assert PersonalField("preflight.TestUpload", "content", Kind.BYTES) in personal_fields()
    assert PersonalField("preflight.TestUpload", "stored", Kind.FILE) in personal_fields()
    first = upload_model.objects.create(content=UPLOAD, stored="uploads/ada-lovelace-passport.pdf")
    again = upload_model.objects.create(content=UPLOAD, stored="uploads/ada-lovelace-passport.pdf")
    other = upload_model.objects.create(content=b"another file", stored="")
    empty = upload_model.objects.create(content=None, stored="")

    take_snapshot(target=copy_target, sanitize=True, key=KEY)

    with snapshot_connection(_copy_config(copy_target)) as alias:
        copied = {row.pk: row for row in upload_model.objects.using(alias).all()}
    masked = bytes(copied[first.pk].content)
    assert len(masked) == len(UPLOAD) and masked != UPLOAD and b"Lovelace" not in masked
    assert bytes(copied[again.pk].content) == masked  # the same upload twice is still the same twice
    assert len(bytes(copied[other.pk].content)) == len(b"another file") != bytes(copied[other.pk].content)
    assert copied[empty.pk].content is None and copied[empty.pk].stored.name == ""
    path = copied[first.pk].stored.name
    assert len(path) == len("uploads/ada-lovelace-passport.pdf") and "lovelace" not in path.lower()
    assert path.count("/") == 1 and path.count(".") == 1  # still a path
    assert bytes(upload_model.objects.get(pk=first.pk).content) == UPLOAD, "production keeps the upload"
    if connection.vendor == "sqlite":
        raw = Path(copy_target).read_bytes()
        assert b"passport scan" not in raw and b"ada-lovelace" not in raw
