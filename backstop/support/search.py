"""The desk's search box: customers and cases by address, name, company, phone, order reference, payment id and the
words of their messages, ranked, without a search server.

One ``CaseSearchEntry`` per case holds the text (``index_case`` rewrites it when a signal joins, a contact is joined
or a note is added). PostgreSQL answers fragments of the identity with ``LIKE`` served by a pg_trgm index, and words
of the messages with its full-text search (prefixes, so results come while a word is half typed). SQLite answers
both with an FTS5 table whose trigram tokenizer matches any fragment of three characters or more.

Past and live incidents are found too (``search_incident_records``): by their title, capability, last error, the
updates customers were told and their post-mortem's text, each word as a fragment, in one ``IncidentSearchEntry`` per
record: FTS5 (trigram) on SQLite, its words in a tsvector (prefixes) on PostgreSQL, as for the cases' bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Case as SqlCase
from django.db.models import IntegerField, Q, Value, When
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.billing.models import Order, PurchaseAttempt
from backstop.incidents import messages as incident_messages
from backstop.incidents.models import Incident as IncidentRecord
from backstop.incidents.models import IncidentState as RecordState
from backstop.incidents.models import IncidentUpdate, PostMortem
from backstop.lib.email_identity import email_key
from backstop.support import messages
from backstop.support.models import Case, CaseNote, CaseSearchEntry, Contact, IncidentSearchEntry, Signal

MIN_QUERY_LENGTH = 3
MAX_QUERY_LENGTH = 200
DEFAULT_LIMIT = 20
INCIDENT_LIMIT = 5
# A customer with hundreds of orders is still one row; the newest references are the ones quoted.
MAX_REFERENCES = 200
MAX_BODY_CHARS = 100_000
TRIGRAM_INDEX = "support_casesearch_identity_trgm"
BODY_INDEX = "support_casesearch_body_fts"


@dataclass(frozen=True)
class SearchModels:
    """The models the entry's text is read from: the live ones, or a migration's historical ones (its fill)."""

    case: Any = Case
    signal: Any = Signal
    contact: Any = Contact
    note: Any = CaseNote
    account: Any = Account
    order: Any = Order
    attempt: Any = PurchaseAttempt


LIVE = SearchModels()


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def entry_texts(case: Any, models: SearchModels = LIVE) -> tuple[str, str]:
    """The (identity, body) the case is found by: identity lower-cased, one part a line."""
    identity = [case.email, case.customer_key]
    account = models.account.objects.filter(pk=case.account_id).first() if case.account_id else None
    if account is not None:
        identity += [account.email, account.name, account.company]
        if account.phone:
            identity += [account.phone, _digits(account.phone)]
    buyer = Q(email_key=case.customer_key) | (Q(account_id=case.account_id) if case.account_id else Q(pk__in=[]))
    for rows in (models.order.objects.filter(buyer), models.attempt.objects.filter(buyer)):
        for reference, payment_id in rows.order_by("-created_at").values_list("reference", "payment_id")[
                :MAX_REFERENCES]:
            identity += [reference, payment_id]
    signals = list(models.signal.objects.filter(case_id=case.pk).order_by("id").values_list("summary", "source"))
    contact_refs = [source.removeprefix("contact:") for _, source in signals if source.startswith("contact:")]
    body = []
    for text, reference, ours in (models.contact.objects.filter(Q(case_id=case.pk) | Q(our_reference__in=contact_refs))
                                  .order_by("id").values_list("text", "reference", "our_reference")):
        body.append(text)
        identity += [reference, ours]
    body += [summary for summary, _ in signals]
    body += list(models.note.objects.filter(case_id=case.pk).order_by("id").values_list("body", flat=True))
    if case.resolution_note:
        body.append(case.resolution_note)
    parts = dict.fromkeys(part.strip().lower() for part in identity if part and part.strip())
    return "\n".join(parts), "\n".join(body)[:MAX_BODY_CHARS]


def index_case(*, case_id: int) -> None:
    """Rewrite the case's search entry from what is recorded now (safe to run twice, and from two processes)."""
    case = Case.objects.filter(pk=case_id).first()
    if case is None:
        return
    identity, body = entry_texts(case)
    fields = {"identity": identity, "body": body, "indexed_at": timezone.now()}
    if CaseSearchEntry.objects.filter(case_id=case_id).update(**fields):
        return
    try:
        with transaction.atomic():
            CaseSearchEntry.objects.create(case_id=case_id, **fields)
    except IntegrityError:  # another process wrote it first: ours was read later, so it stands
        CaseSearchEntry.objects.filter(case_id=case_id).update(**fields)


def reindex_all() -> int:
    """Every case's entry again (after a bulk load, or when the gathering rules change)."""
    case_ids = list(Case.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(case_ids), 500):  # a commit per 500: one per case is a disk sync each on SQLite
        with transaction.atomic():
            for case_id in case_ids[start:start + 500]:
                index_case(case_id=case_id)
    return len(case_ids)


# --- Asking ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchHit:
    case: Case
    name: str
    company: str
    # What matched, in words: "order bk-7h2k..." or an excerpt of their message.
    matched: str
    outcome: str


@dataclass(frozen=True)
class IncidentHit:
    """A past or live incident record the query found, and where: its page and its post-mortem's."""

    record: IncidentRecord
    state: str
    has_postmortem: bool
    matched: str


@dataclass(frozen=True)
class SearchAnswer:
    query: str
    hits: list[SearchHit]
    # Said instead of results: too short, nothing found.
    note: str = ""
    incidents: list[IncidentHit] = field(default_factory=list)


def _like_pattern(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


# Each word a prefix ("refun" finds "refund" while it is being typed), or the query as PostgreSQL's parser reads it:
# it keeps "lee@example.com" one word, which the split into words could not find.
# Matches first (a materialised CTE: the planner answers it from the two indexes, whatever it believes of the case
# table), then ranked with the case. The body's words are the stored ``body_words`` column (migration 0012).
_PG_SEARCH = """
    WITH hits AS MATERIALIZED (
        SELECT e.case_id, e.identity LIKE %(like)s AS in_identity,
               ts_rank(e.body_words, plainto_tsquery('simple', %(query)s)
                                     || to_tsquery('simple', %(tsquery)s)) AS relevance
        FROM support_casesearchentry e
        WHERE e.identity LIKE %(like)s
           OR e.body_words @@ (plainto_tsquery('simple', %(query)s) || to_tsquery('simple', %(tsquery)s))
    )
    SELECT h.case_id FROM hits h JOIN support_case c ON c.id = h.case_id
    ORDER BY (c.customer_key = %(key)s) DESC, h.in_identity DESC, (c.state = 'open') DESC, h.relevance DESC,
             c.updated_at DESC, c.id DESC
    LIMIT %(limit)s"""
# A query without a word character ("+-@") can only be a fragment of the identity.
_PG_SEARCH_IDENTITY = """
    WITH hits AS MATERIALIZED (SELECT e.case_id FROM support_casesearchentry e WHERE e.identity LIKE %(like)s)
    SELECT h.case_id FROM hits h JOIN support_case c ON c.id = h.case_id
    ORDER BY (c.customer_key = %(key)s) DESC, (c.state = 'open') DESC, c.updated_at DESC, c.id DESC
    LIMIT %(limit)s"""
# The trigram tokenizer matches fragments of three characters or more, in either column; bm25 weighs identity x10.
_SQLITE_SEARCH = """
    SELECT e.case_id
    FROM support_casesearch_fts f JOIN support_casesearchentry e ON e.case_id = f.rowid
         JOIN support_case c ON c.id = e.case_id
    WHERE support_casesearch_fts MATCH %s
    ORDER BY (c.customer_key = %s) DESC, (instr(e.identity, %s) > 0) DESC, (c.state = 'open') DESC,
             bm25(support_casesearch_fts, 10.0, 1.0), c.updated_at DESC, c.id DESC
    LIMIT %s"""


def _case_ids_postgresql(query: str, key: str, limit: int) -> list[int]:
    words = _words(query)
    tsquery = " & ".join(f"{word}:*" for word in words)
    with connection.cursor() as cursor:
        cursor.execute(_PG_SEARCH if words else _PG_SEARCH_IDENTITY, {
            "like": _like_pattern(query), "query": query, "tsquery": tsquery, "key": key, "limit": limit})
        return [row[0] for row in cursor.fetchall()]


def _fts5_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _case_ids_sqlite(query: str, key: str, limit: int) -> list[int]:
    # Words shorter than a trigram cannot narrow anything: left out.
    terms = [term for term in query.split() if len(term) >= MIN_QUERY_LENGTH]
    if not terms:
        return []
    match = " ".join(_fts5_phrase(term) for term in terms)
    with connection.cursor() as cursor:
        cursor.execute(_SQLITE_SEARCH, [match, key, query, limit])
        return [row[0] for row in cursor.fetchall()]


def _excerpt(text: str, at: int) -> str:
    start = max(0, at - 40)
    excerpt = " ".join(text[start:at + 80].split())
    return ("…" if start else "") + excerpt + "…"


def _matched(entry: CaseSearchEntry | None, query: str) -> str:
    """Where the query was found, for the result line: the identity part, else an excerpt of the message."""
    if entry is None:
        return ""
    for part in entry.identity.splitlines():
        if query in part:
            return part
    lowered = entry.body.lower()
    at = lowered.find(query)
    if at < 0:
        words = _words(query)
        at = lowered.find(words[0]) if words else -1
    if at < 0:
        return ""
    return _excerpt(entry.body, at)


def _outcome(case: Case) -> str:
    if case.is_open:
        return messages.SEARCH_OPEN.format(harm=case.get_harm_display())
    return messages.SEARCH_RESOLVED.format(
        resolution=case.get_resolution_display() or messages.SEARCH_RESOLVED_PLAIN,
        when=f"{case.resolved_at:%d %b %Y}" if case.resolved_at else "",
        note=f": {case.resolution_note}" if case.resolution_note else "")


def _incident_terms(query: str) -> list[str]:
    return [term for term in query.split() if len(term) >= MIN_QUERY_LENGTH] or [query]


# Every word in the entry's text. SQLite: its FTS5 table (trigram tokenizer, case-folded: any fragment), as the cases'.
# PostgreSQL: the stored words (``text_words``, a generated tsvector with a GIN index, migration 0017), each word of
# the query a prefix, as the cases' bodies.
_SQLITE_INCIDENTS = "SELECT rowid FROM support_incidentsearch_fts WHERE support_incidentsearch_fts MATCH %s"
_PG_INCIDENTS = "SELECT record_id FROM support_incidentsearchentry WHERE text_words @@ to_tsquery('simple', %s)"


def _incident_record_ids(terms: list[str]) -> list[int]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            words = _words(" ".join(terms))
            if not words:
                return []
            cursor.execute(_PG_INCIDENTS, [" & ".join(f"{word}:*" for word in words)])
        else:
            cursor.execute(_SQLITE_INCIDENTS, [" ".join(_fts5_phrase(term) for term in terms)])
        return [row[0] for row in cursor.fetchall()]


def _incident_matched(record: IncidentRecord, text: str, terms: list[str]) -> str:
    """Where the first word was found: the title says it; else the sentence of the update or post-mortem."""
    term = terms[0]
    if term in record.title.lower():
        return ""
    at = text.lower().find(term)
    return _excerpt(text, at) if at >= 0 else ""


def search_incident_records(*, query: str, limit: int = INCIDENT_LIMIT) -> list[IncidentHit]:
    """Incidents whose title, capability, last error, updates or post-mortem hold every word of the query (each as a
    fragment, case-folded): live first, then the newest."""
    terms = _incident_terms(" ".join(query.split())[:MAX_QUERY_LENGTH].lower())
    if connection.vendor == "sqlite" and any(len(term) < MIN_QUERY_LENGTH for term in terms):
        return []  # shorter than a trigram: the FTS5 table can match nothing
    record_ids = _incident_record_ids(terms)
    if not record_ids:
        return []
    found = list(IncidentRecord.objects.filter(pk__in=record_ids).select_related("postmortem")
                 .order_by(SqlCase(When(state=RecordState.RESOLVED, then=Value(1)), default=Value(0),
                                   output_field=IntegerField()), "-started_at", "-pk")[:limit])
    texts = dict(IncidentSearchEntry.objects.filter(record_id__in=[r.pk for r in found])
                 .values_list("record_id", "text"))
    return [IncidentHit(record=record, state=incident_messages.STATE_LABELS[record.state],
                        has_postmortem=hasattr(record, "postmortem"),  # a record without one raises: hasattr says no
                        matched=_incident_matched(record, texts.get(record.pk, ""), terms))
            for record in found]


def search_cases(*, query: str, limit: int = DEFAULT_LIMIT, with_incidents: bool = False) -> SearchAnswer:
    """The cases whose customer or messages match, ranked: the very address first, then matches in who they are
    (address, name, company, phone, references), open before resolved, then by relevance and recency. With
    ``with_incidents`` (staff who may read them), the incident records that match too."""
    query = " ".join(query.split())[:MAX_QUERY_LENGTH]
    lowered = query.lower()
    if len(lowered) < MIN_QUERY_LENGTH:
        return SearchAnswer(query=query, hits=[], note=messages.SEARCH_TOO_SHORT.format(count=MIN_QUERY_LENGTH))
    key = email_key(query) if "@" in query else ""
    if connection.vendor == "postgresql":
        case_ids = _case_ids_postgresql(lowered, key, limit)
    else:
        case_ids = _case_ids_sqlite(lowered, key, limit)
    cases = Case.objects.select_related("account").in_bulk(case_ids)
    entries = CaseSearchEntry.objects.in_bulk(case_ids)
    hits = []
    for case_id in case_ids:
        case = cases[case_id]
        account = case.account
        hits.append(SearchHit(case=case, name=account.name if account else "",
                              company=account.company if account else "",
                              matched=_matched(entries.get(case_id), lowered), outcome=_outcome(case)))
    incidents = search_incident_records(query=lowered) if with_incidents else []
    return SearchAnswer(query=query, hits=hits, incidents=incidents,
                        note="" if hits or incidents else messages.SEARCH_NOTHING.format(query=query))


def trigram_index_missing() -> bool:
    """On PostgreSQL without pg_trgm (the migration could not create the extension), fragments are found by a scan."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [TRIGRAM_INDEX])
        return cursor.fetchone() is None


@dataclass(frozen=True)
class IncidentSearchModels:
    """The models an incident's entry is read from: the live ones, or a migration's historical ones (its fill)."""

    record: Any = IncidentRecord
    update: Any = IncidentUpdate
    postmortem: Any = PostMortem


def incident_entry_text(record: Any, models: IncidentSearchModels = IncidentSearchModels()) -> str:
    parts = [record.title, record.capability, record.last_error]
    parts += list(models.update.objects.filter(incident_id=record.pk).order_by("id").values_list("body", flat=True))
    parts += list(models.postmortem.objects.filter(incident_id=record.pk).values_list("markdown", flat=True))
    return "\n".join(part for part in parts if part)[:MAX_BODY_CHARS]


def index_incident_record(*, record_id: int) -> None:
    """Rewrite the record's search entry from what is recorded now (safe to run twice, and from two processes)."""
    record = IncidentRecord.objects.filter(pk=record_id).first()
    if record is None:
        return
    fields = {"text": incident_entry_text(record), "indexed_at": timezone.now()}
    if IncidentSearchEntry.objects.filter(record_id=record_id).update(**fields):
        return
    try:
        with transaction.atomic():
            IncidentSearchEntry.objects.create(record_id=record_id, **fields)
    except IntegrityError:  # another process wrote it first: ours was read later, so it stands
        IncidentSearchEntry.objects.filter(record_id=record_id).update(**fields)


def reindex_incident_records() -> int:
    """Every incident record's entry again (after a bulk load)."""
    record_ids = list(IncidentRecord.objects.order_by("pk").values_list("pk", flat=True))
    with transaction.atomic():
        for record_id in record_ids:
            index_incident_record(record_id=record_id)
    return len(record_ids)


def on_incident_text_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """An incident record, one of its updates or its post-mortem was saved: its entry again, after the commit."""
    record_id = instance.pk if isinstance(instance, IncidentRecord) else instance.incident_id
    transaction.on_commit(lambda: index_incident_record(record_id=record_id))


# --- Kept current from the other apps' writes ------------------------------------------------------------

def reindex_customer(*, customer_key: str, account_id: int | None = None) -> int:
    """Every case of this customer again: an order, a checkout or their details changed where support doesn't write."""
    who = Q(customer_key=customer_key) | (Q(account_id=account_id) if account_id else Q(pk__in=[]))
    case_ids = list(Case.objects.filter(who).values_list("pk", flat=True))
    for case_id in case_ids:
        index_case(case_id=case_id)
    return len(case_ids)


IDENTITY_FIELDS = frozenset({"email", "email_key", "name", "company", "phone"})


def on_buyer_row_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """An order or a checkout was recorded: its reference (and payment id) find the customer's cases, once the
    billing transaction has committed (never inside it)."""
    if created:
        key, account_id = instance.email_key, instance.account_id
        transaction.on_commit(lambda: reindex_customer(customer_key=key, account_id=account_id))


def on_account_saved(sender: Any, instance: Any, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    if created or (update_fields is not None and not IDENTITY_FIELDS & set(update_fields)):
        return  # a new account has no case yet; a save of its state or timestamps changes nothing searched
    key, account_id = instance.email_key, instance.pk
    transaction.on_commit(lambda: reindex_customer(customer_key=key, account_id=account_id))
