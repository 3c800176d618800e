"""Who is signed in, read for a draft save in one SQL statement instead of Django's session and user loads.

A page saves its draft every few seconds while someone types, so this runs far more often than any page. Django's
`request.user` costs two ORM queries (the session row, then the whole account) and most of a save's CPU. Here the
session row and the account row come back from one raw statement and go through Django's own checks: the session's
signature (its store's `decode`), its expiry, the backend named in it, `user_can_authenticate` (a disabled account)
and the session auth hash (a changed password). Nothing about a session is kept between requests: every save reads
the database, so a logout (the row deleted) or a password change (the hash no longer matches) in any process ends
the session for the very next save, in every process.

What is kept, per process, is only which account id a session key named last time, so that one statement can join
the account's row; the session's own data is checked against it on every request, and a miss or a mismatch costs a
second statement, never a wrong answer. Anything but the plain "signed in and valid" case (no row, a hash that does
not match or matches only an old secret, another session engine or backend) goes to Django's `request.user`, which
does what it always does there (flushing the session, rotating the key).
"""

from __future__ import annotations

import threading
from functools import cache
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends.base import SessionBase
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

DB_SESSION_ENGINE = "django.contrib.sessions.backends.db"
# Session key -> the account id it named last time. Bounded: when full it starts again (a miss costs one statement).
_HINTS_MAX = 100_000
_hints: dict[str, Any] = {}
_hints_lock = threading.Lock()
_ANSWER = "_backstop_signed_in_user_id"


@cache
def _statements() -> tuple[type[SessionBase], str, str, list[str], int]:
    """The session store, the joined and the account-only SELECT, the account's attribute names and where its
    primary key is among them (worked out once a process)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    sessions = store.get_model_class()._meta.db_table
    user_model = get_user_model()
    meta = user_model._meta
    quote = connection.ops.quote_name
    columns = [f.column for f in meta.concrete_fields]
    selected = ", ".join(f"u.{quote(c)}" for c in columns)
    # Names from the models, quoted by the database's own rules; every value is a parameter.
    joined = (f"SELECT s.session_data, {selected} FROM {quote(sessions)} s "  # noqa: S608 (names, see above)
              f"LEFT JOIN {quote(meta.db_table)} u ON u.{quote(meta.pk.column)} = %s "
              "WHERE s.session_key = %s AND s.expire_date > %s")
    alone = f"SELECT {selected} FROM {quote(meta.db_table)} u WHERE u.{quote(meta.pk.column)} = %s"  # noqa: S608
    return store, joined, alone, [f.attname for f in meta.concrete_fields], columns.index(meta.pk.column)


def _remember(session_key: str, user_id: Any) -> None:
    with _hints_lock:
        if len(_hints) >= _HINTS_MAX:
            _hints.clear()
        _hints[session_key] = user_id


def signed_in_user_id(request: HttpRequest) -> Any | None:
    """The signed-in account's id, or None when nobody is signed in: the same answer as ``request.user``.

    Already loaded in this request: from there. Otherwise the fast path above, and ``request.user`` when it cannot
    decide. (The account it checked is not handed on as ``request.user``: its row is read raw, without the ORM's
    conversions, good for the checks and nothing else.)
    """
    user = getattr(request, "user", None)
    if hasattr(request, "_cached_user") or (user is not None and type(user) is not SimpleLazyObject):
        # Already read in this request (AuthenticationMiddleware's own cache), or set by login() or logout(): that.
        return user.pk if user is not None and user.is_authenticated else None
    if hasattr(request, _ANSWER):  # a request asks more than once (the view, then the drafts middleware)
        return getattr(request, _ANSWER)
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        # No session cookie: Django's answer is the anonymous user without a query either.
        return None
    user_id = _checked_user_id(session_key) if settings.SESSION_ENGINE == DB_SESSION_ENGINE else None
    if user_id is None:
        return request.user.pk if request.user.is_authenticated else None
    setattr(request, _ANSWER, user_id)
    return user_id


def _checked_user_id(session_key: str) -> Any | None:
    store_class, joined, alone, attnames, pk_index = _statements()
    user_model = get_user_model()
    hint = _hints.get(session_key)
    with connection.cursor() as cursor:
        # A key of the wrong shape finds no row, as in the store's own load.
        cursor.execute(joined, [hint, session_key, connection.ops.adapt_datetimefield_value(timezone.now())])
        row = cursor.fetchone()
        if row is None:
            return None
        data = store_class().decode(row[0])  # checks the signature; {} when it does not hold
        try:
            user_id = user_model._meta.pk.to_python(data[SESSION_KEY])
            backend_path = data[BACKEND_SESSION_KEY]
        except (KeyError, ValueError):
            return None
        account = row[1:]
        if hint is None or hint != user_id or account[pk_index] is None:
            _remember(session_key, user_id)
            cursor.execute(alone, [user_id])
            account = cursor.fetchone()
            if account is None:
                return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    backend = load_backend(backend_path)
    # Only the model backend's get_user is the lookup by primary key done here; any other goes the long way.
    if type(backend).get_user is not ModelBackend.get_user:
        return None
    user = user_model.from_db(connection.alias, attnames, list(account))
    if not backend.user_can_authenticate(user):  # type: ignore[attr-defined]
        return None
    session_hash = data.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None  # Django's path flushes it, or moves it to the current secret
    return user_id
