"""Django settings. Every value comes from an env helper with a default that runs a fresh checkout."""

from __future__ import annotations

import re
from pathlib import Path

import dj_database_url

from backstop.lib.env import env_bool, env_choice, env_float, env_int, env_path, env_str, env_time_range
from backstop.lib.logs import logging_config
from backstop.lib.sqlite_gate import GatedConnection

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("BACKSTOP_DATA_DIR", BASE_DIR / "var")

# "development" runs a fresh checkout; "production" turns on the checks in backstop/checks.py.
MODE = env_choice("BACKSTOP_MODE", "development", {"development", "production"})
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-never-use-in-production"
SECRET_KEY = env_str("BACKSTOP_SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = env_bool("BACKSTOP_DEBUG", False)
ALLOWED_HOSTS = [h for h in env_str("BACKSTOP_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
BASE_URL = env_str("BACKSTOP_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = [BASE_URL]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "backstop.apps.SiteConfig",
    "backstop.runtime",
    "backstop.ratelimits",
    "backstop.accounts",
    "backstop.workspaces",
    "backstop.notify",
    "backstop.attention",
    "backstop.support",
    "backstop.incidents",
    "backstop.demo",
    "backstop.billing",
    "backstop.drafts",
    "backstop.preflight",
    "backstop.monitoring",
]

MIDDLEWARE = [
    "backstop.monitoring.middleware.LivenessMiddleware",
    "backstop.web.proxies.TrustedProxyMiddleware",
    "backstop.web.request_ids.RequestIdMiddleware",
    "backstop.monitoring.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "backstop.web.session_cookie.SessionCookieMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "backstop.drafts.middleware.DraftsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "backstop.errors.ApiErrorShapeMiddleware",
]
CSRF_FAILURE_VIEW = "backstop.errors.csrf_failure"

ROOT_URLCONF = "backstop.urls"
WSGI_APPLICATION = "backstop.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "backstop" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "backstop.demo.context.demo_mode",
            ],
            # Every page can turn "write to us" into a link to the contact page without loading anything.
            "builtins": ["backstop.web.contact_links", "backstop.web.local_times"],
        },
    }
]

DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    # One pool of connections per process, shared by web and workflow threads: a new PostgreSQL connection costs the
    # server a process start (a signup several milliseconds; every workflow, before the pool), and the pool bounds
    # how many a burst of workflows can open. Closing a connection (runtime.engine.release_db_connections, the end
    # of a request) returns it to the pool.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2, "max_size": env_int("BACKSTOP_DB_POOL_SIZE", 30, minimum=1), "timeout": 30,
    }
    # The workflow engine keeps its tables in the "dbos" schema of the same database.
    DBOS_SYSTEM_DATABASE_URL = DATABASE_URL
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "backstop.sqlite3"),
            "OPTIONS": {
                # WAL lets the web server read while workflows write; IMMEDIATE takes the write lock at
                # BEGIN so two writers queue on busy_timeout instead of failing mid-transaction.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                # Writers in this process get the write lock in arrival order (see backstop.lib.sqlite_gate).
                "factory": GatedConnection,
            },
            # Workflows run on threads with their own connections, so tests need a file, not :memory:.
            "TEST": {"NAME": str(DATA_DIR / "test-backstop.sqlite3")},
        }
    }
    # A separate SQLite file: one writer lock per file, and the engine writes on every step.
    DBOS_SYSTEM_DATABASE_URL = f"sqlite:///{DATA_DIR / 'workflows.sqlite3'}"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.Account"
PASSWORD_HASHERS = [
    "backstop.accounts.hashers.BoundedArgon2PasswordHasher",
]
# Argon2's memory cost in KiB: Django's 102400 (100 MiB). The test suite lowers it (a hash in 3 ms instead of 120 ms,
# thousands of them per run); production refuses anything under Django's (system check backstop.E011).
PASSWORD_ARGON2_MEMORY_KIB = env_int("BACKSTOP_PASSWORD_ARGON2_MEMORY_KIB", 102400, minimum=64)
# Argon2 hashes one web process runs at once (each holds 100 MiB while it runs); more requests wait their turn.
PASSWORD_HASHES_AT_ONCE = env_int("BACKSTOP_PASSWORD_HASHES_AT_ONCE", 2, minimum=1)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
     "OPTIONS": {"user_attributes": ("name", "email", "company")}},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 14
SESSION_COOKIE_SECURE = MODE == "production"
CSRF_COOKIE_SECURE = MODE == "production"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# Bodies beyond this are refused with a clear 400 before any parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("BACKSTOP_MAX_BODY_BYTES", 64 * 1024, minimum=1024)

# --- Providers -----------------------------------------------------------------------------------
# Each third party sits behind an adapter; the defaults are local fakes so a checkout runs offline.
EMAIL_PROVIDER = env_choice("BACKSTOP_EMAIL", "mailbox", {"mailbox", "smtp", "anymail", "resend"})
EMAIL_BACKEND = {
    "mailbox": "backstop.notify.providers.LocalMailboxEmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    # Resend's API through anymail, each message's id sent as its Idempotency-Key; the local fake is notify/fakemail.py.
    "resend": "backstop.notify.providers.ResendEmailBackend",
    "anymail": env_str("BACKSTOP_ANYMAIL_BACKEND", "anymail.backends.postmark.EmailBackend"),
}[EMAIL_PROVIDER]
EMAIL_HOST = env_str("BACKSTOP_SMTP_HOST", "127.0.0.1")
EMAIL_PORT = env_int("BACKSTOP_SMTP_PORT", 1025, minimum=1)
EMAIL_HOST_USER = env_str("BACKSTOP_SMTP_USER", "")
EMAIL_HOST_PASSWORD = env_str("BACKSTOP_SMTP_PASSWORD", "")
EMAIL_USE_TLS = env_bool("BACKSTOP_SMTP_TLS", False)
EMAIL_TIMEOUT = env_float("BACKSTOP_EMAIL_TIMEOUT", 10.0, minimum=0.1)
DEFAULT_FROM_EMAIL = env_str("BACKSTOP_FROM_EMAIL", "Backstop <hello@backstop.localhost>")
ANYMAIL = {
    "POSTMARK_SERVER_TOKEN": env_str("BACKSTOP_POSTMARK_TOKEN", ""),
    "RESEND_API_KEY": env_str("BACKSTOP_RESEND_API_KEY", ""),
    "RESEND_API_URL": env_str("BACKSTOP_RESEND_API_URL", "https://api.resend.com/"),
    # Inbound webhooks (support.inbound_webhooks): an ESP whose secret is empty here is not mounted (its URL answers
    # 404). WEBHOOK_SECRET is anymail's shared basic auth ("user:password"), the only check some ESPs offer.
    "WEBHOOK_SECRET": env_str("BACKSTOP_INBOUND_WEBHOOK_SECRET", ""),
    "MAILGUN_WEBHOOK_SIGNING_KEY": env_str("BACKSTOP_MAILGUN_WEBHOOK_SIGNING_KEY", ""),
    "MAILERSEND_INBOUND_SECRET": env_str("BACKSTOP_MAILERSEND_INBOUND_SECRET", ""),
    "POSTAL_WEBHOOK_KEY": env_str("BACKSTOP_POSTAL_WEBHOOK_KEY", ""),
}
# --- Inbound email (support.inbound) --------------------------------------------------------------
# The domain of the reply addresses (case+<id>.<token>@<domain>) and of our Message-IDs; its MX or the ESP's inbound
# route points at us. Checked by backstop.E210.
INBOUND_DOMAIN = env_str("BACKSTOP_INBOUND_DOMAIN", "reply.backstop.localhost").strip().lower()
# The largest request body the inbound webhooks take (other paths keep BACKSTOP_MAX_BODY_BYTES); refused with 413.
INBOUND_MAX_BODY_BYTES = env_int("BACKSTOP_INBOUND_MAX_BODY_BYTES", 25 * 1024 * 1024, minimum=64 * 1024)
# Attachments kept per file and per message; a larger one, or one of another type, is listed by name, not stored.
INBOUND_ATTACHMENT_MAX_BYTES = env_int("BACKSTOP_INBOUND_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
INBOUND_ATTACHMENTS_MAX_TOTAL_BYTES = env_int("BACKSTOP_INBOUND_ATTACHMENTS_MAX_TOTAL_BYTES", 20 * 1024 * 1024,
                                              minimum=1024)
INBOUND_ATTACHMENT_TYPES = sorted({t.strip().lower() for t in env_str(
    "BACKSTOP_INBOUND_ATTACHMENT_TYPES",
    "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,text/csv").split(",") if t.strip()})

SMS_PROVIDER = env_choice("BACKSTOP_SMS", "mailbox", {"mailbox", "twilio"})
SMS_TIMEOUT = env_float("BACKSTOP_SMS_TIMEOUT", 10.0, minimum=0.1)
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = env_str("TWILIO_FROM_NUMBER", "")
# Tests point this at a local HTTP server; production leaves the default.
TWILIO_API_BASE = env_str("BACKSTOP_TWILIO_API_BASE", "https://api.twilio.com").rstrip("/")

WORKSPACE_PROVIDER = env_choice("BACKSTOP_WORKSPACES", "local", {"local", "http"})
WORKSPACE_PROVISIONER_URL = env_str("BACKSTOP_PROVISIONER_URL", "")
WORKSPACE_PROVISIONER_TOKEN = env_str("BACKSTOP_PROVISIONER_TOKEN", "")
WORKSPACE_TIMEOUT = env_float("BACKSTOP_WORKSPACE_TIMEOUT", 10.0, minimum=0.1)

# Payments go through Stripe's API: to Stripe itself, or to `backstop fakepay`, a local process speaking it.
PAYMENTS_PROVIDER = env_choice("BACKSTOP_PAYMENTS", "fakepay", {"fakepay", "stripe"})
FAKEPAY_API_BASE = "http://127.0.0.1:12111"
FAKEPAY_API_KEY = "sk_test_fakepay"
FAKEPAY_WEBHOOK_SECRET = "whsec_fakepay_local"
STRIPE_API_KEY = env_str("STRIPE_API_KEY", FAKEPAY_API_KEY)
# Empty: the SDK's own address for Stripe.
STRIPE_API_BASE = env_str("STRIPE_API_BASE", FAKEPAY_API_BASE if PAYMENTS_PROVIDER == "fakepay" else "").rstrip("/")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", FAKEPAY_WEBHOOK_SECRET)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env_int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1)
PAYMENT_TIMEOUT = env_float("BACKSTOP_PAYMENT_TIMEOUT", 20.0, minimum=0.1)
# Tries of one charge (same idempotency key) before the checkout is "in doubt" and left to reconciliation.
PAYMENT_MAX_ATTEMPTS = env_int("BACKSTOP_PAYMENT_MAX_ATTEMPTS", 3, minimum=1)
# How long POST /api/checkout waits for the charge before answering "processing".
CHECKOUT_WAIT_SECONDS = env_float("BACKSTOP_CHECKOUT_WAIT_SECONDS", 3.0, minimum=0)
# A checkout that takes longer than this to finish gets the confirmation that apologises for the wait.
CHECKOUT_SLOW_SECONDS = env_float("BACKSTOP_CHECKOUT_SLOW_SECONDS", 30.0, minimum=0.1)
# The "we are checking and will email you within N minutes" promise; reconciliation runs every 5 minutes.
IN_DOUBT_REPLY_MINUTES = env_int("BACKSTOP_IN_DOUBT_REPLY_MINUTES", 15, minimum=1)
# The most days of access one support credit may add (a typo must not give away years).
CREDIT_MAX_DAYS = env_int("BACKSTOP_CREDIT_MAX_DAYS", 90, minimum=1)
RECONCILE_SCHEDULE = env_str("BACKSTOP_RECONCILE_SCHEDULE", "0 */5 * * * *")  # cron with seconds; empty: off
RECONCILE_OVERLAP_SECONDS = env_float("BACKSTOP_RECONCILE_OVERLAP_SECONDS", 3600.0, minimum=0)
# Payments younger than this are left to their own checkout workflow and webhook.
RECONCILE_SETTLE_SECONDS = env_float("BACKSTOP_RECONCILE_SETTLE_SECONDS", 120.0, minimum=0)
RECONCILE_STUCK_AFTER_SECONDS = env_float("BACKSTOP_RECONCILE_STUCK_AFTER_SECONDS", 600.0, minimum=0)

# Fault injection wraps the adapters in the demo and the tests; a production check refuses it.
FAULT_INJECTION = env_bool("BACKSTOP_FAULT_INJECTION", False)
INITIAL_FAULTS = env_str("BACKSTOP_FAULTS", "")
FAULT_SLOW_SECONDS = env_float("BACKSTOP_FAULT_SLOW_SECONDS", 2.0, minimum=0)
DEMO_PAGES = env_bool("BACKSTOP_DEMO_PAGES", False)

# --- Workflows -----------------------------------------------------------------------------------
EXECUTOR_ID = env_str("BACKSTOP_EXECUTOR_ID", "")
# Where `backstop serve` runs workflows: "process" starts a `backstop worker` child, so background work never holds
# the web server's interpreter lock; "inside" runs them on threads of the web process; "none" serves the web only
# (workers run elsewhere). PostgreSQL defaults to "process"; SQLite to "inside", because two processes on one file
# contend for its write lock with sleeping retries (see docs/decisions.md).
SERVE_WORKFLOWS = env_choice("BACKSTOP_SERVE_WORKFLOWS", "process" if DATABASE_URL else "inside",
                             {"inside", "process", "none"})
SETUP_MAX_ATTEMPTS = env_int("BACKSTOP_SETUP_MAX_ATTEMPTS", 8, minimum=1)
RETRY_BASE_SECONDS = env_float("BACKSTOP_RETRY_BASE_SECONDS", 2.0, minimum=0.01)
RETRY_CAP_SECONDS = env_float("BACKSTOP_RETRY_CAP_SECONDS", 300.0, minimum=0.01)
BREAKER_THRESHOLD = env_int("BACKSTOP_BREAKER_THRESHOLD", 5, minimum=1)
BREAKER_COOLDOWN_SECONDS = env_float("BACKSTOP_BREAKER_COOLDOWN_SECONDS", 15.0, minimum=0.1)
# While a provider's breaker is not healthy, how often a cheap health call checks it, without customer traffic
# (runtime/probing.py): an incident ends, and the customers waiting on it are retried, within this of recovery.
BREAKER_PROBE_SECONDS = env_float("BACKSTOP_BREAKER_PROBE_SECONDS", 10.0, minimum=0.1)
# A provider's Retry-After (on a 429 or 503) holds every call to it until then; a longer wait than this is capped, and
# the breaker's last error says so (a broken or hostile header must not silence a provider for days).
RETRY_AFTER_CAP_SECONDS = env_float("BACKSTOP_RETRY_AFTER_CAP_SECONDS", 3600.0, minimum=1)
# After a 429, calls to that provider are paced at the rate it stated (``ratelimit-limit``) or, without one, at a rate
# learnt from its 429s (runtime/models.py, ``read_before_call``): each call takes a slot in the breaker row. A caller
# whose slot is at most this far ahead sleeps for it inside its attempt; a later one waits durably and comes back.
PACE_MAX_SLEEP_SECONDS = env_float("BACKSTOP_PACE_MAX_SLEEP_SECONDS", 15.0, minimum=0.1)
# A pace not needed for this long (no 429 since it was learnt) is forgotten: calls go unpaced until the next 429,
# which is how a provider's raised limit is found.
PACE_FORGET_SECONDS = env_float("BACKSTOP_PACE_FORGET_SECONDS", 600.0, minimum=1)
SWEEP_GRACE_SECONDS = env_float("BACKSTOP_SWEEP_GRACE_SECONDS", 60.0, minimum=1)
HEARTBEAT_SECONDS = env_float("BACKSTOP_HEARTBEAT_SECONDS", 5.0, minimum=0.1)
EXECUTOR_DEAD_AFTER_SECONDS = env_float("BACKSTOP_EXECUTOR_DEAD_AFTER_SECONDS", 30.0, minimum=0.5)
# How often each process looks in the database for queued background work and, on SQLite, for messages to waiting
# workflows. Every look costs CPU that signups' password hashing competes with (see docs/decisions.md). A buyer's
# checkout waits on no queue: its workflow starts at once (billing.checkout.hand_over_purchase).
QUEUE_POLL_SECONDS = env_float("BACKSTOP_QUEUE_POLL_SECONDS", 1.0, minimum=0.01)
SETUP_CONCURRENCY = env_int("BACKSTOP_SETUP_CONCURRENCY", 50, minimum=1)
# Accounts whose first setup attempts one batch workflow makes (see docs/decisions.md).
SETUP_BATCH_SIZE = env_int("BACKSTOP_SETUP_BATCH_SIZE", 100, minimum=1)
# Nice value of workflow and supervisor threads (0 = same priority as web requests). See docs/decisions.md.
BACKGROUND_NICE = env_int("BACKSTOP_BACKGROUND_NICE", 10, minimum=0)

# --- Abuse limits ----------------------------------------------------------------------------------
# Multiplies every limit; benchmarks raise it, 0 switches limits off (refused in production).
RATE_LIMIT_SCALE = env_float("BACKSTOP_RATE_LIMIT_SCALE", 1.0, minimum=0)
VERIFICATION_CODE_TTL_SECONDS = 10 * 60
# Guesses at one code from one address (the account's wrong codes are bounded too, in accounts/signin.py; the sign-in
# link in the same email is never guessed and never held to either).
VERIFICATION_CODE_MAX_TRIES = 5
# How many proxies of our own stand in front of the site: the visitor's address is then the entry this many hops from
# the right of X-Forwarded-For. 0 (the default): the header is never read, the peer address is the visitor's.
# Parsed here, refused by the system check backstop.E010 when it is not a whole number from 0 to 5.
TRUSTED_PROXY_COUNT_SETTING = env_str("BACKSTOP_TRUSTED_PROXY_COUNT", "0").strip() or "0"
TRUSTED_PROXY_COUNT = int(TRUSTED_PROXY_COUNT_SETTING) if re.fullmatch(r"[0-5]", TRUSTED_PROXY_COUNT_SETTING) else 0

# --- Support desk ----------------------------------------------------------------------------------
# How often each process runs the support cycle (join signals, incidents, auto-resolution, staff notices).
SUPPORT_CYCLE_SECONDS = env_float("BACKSTOP_SUPPORT_CYCLE_SECONDS", 30.0, minimum=0.1)
# UTC window ("22:00-07:00") in which no staff notification is sent; held ones go out when it ends.
SUPPORT_QUIET_HOURS = env_time_range("BACKSTOP_SUPPORT_QUIET_HOURS", "")
# At most one digest this often (0: on every cycle with something in it).
SUPPORT_DIGEST_HOURS = env_float("BACKSTOP_SUPPORT_DIGEST_HOURS", 24.0, minimum=0)
# Customers hurt by one still-failing provider that make an incident even before its breaker opens.
SUPPORT_INCIDENT_MIN_CASES = env_int("BACKSTOP_SUPPORT_INCIDENT_MIN_CASES", 3, minimum=2)
# After the provider recovers, how long automation has to finish an incident's cases before a person gets them.
SUPPORT_INCIDENT_SETTLE_SECONDS = env_float("BACKSTOP_SUPPORT_INCIDENT_SETTLE_SECONDS", 900.0, minimum=1)
# How long the contact form watches a retried setup before answering "still running".
SUPPORT_CONTACT_WAIT_SECONDS = env_float("BACKSTOP_SUPPORT_CONTACT_WAIT_SECONDS", 5.0, minimum=0)

# --- Incidents (backstop/incidents) ---------------------------------------------------------------
# The public status page's file, written at each change and read without the database (docs/decisions.md).
INCIDENTS_STATUS_FILE = env_path("BACKSTOP_INCIDENTS_STATUS_FILE", DATA_DIR / "status.json")
# The severity rule's counts (incidents/severity.py): customers affected that make an incident SEV-1 and SEV-2.
INCIDENT_SEV1_CUSTOMERS = env_int("BACKSTOP_INCIDENT_SEV1_CUSTOMERS", 50, minimum=2)
INCIDENT_SEV2_CUSTOMERS = env_int("BACKSTOP_INCIDENT_SEV2_CUSTOMERS", 5, minimum=1)
# Customers hurt by one provider that is failing (before its breaker opens) that open an incident by themselves.
INCIDENT_OPEN_AT_CUSTOMERS = env_int("BACKSTOP_INCIDENT_OPEN_AT_CUSTOMERS", 3, minimum=1)
# A mitigated incident resolves by itself once its capability has worked this long and no customer waits on it.
INCIDENT_RESOLVE_AFTER_SECONDS = env_float("BACKSTOP_INCIDENT_RESOLVE_AFTER_SECONDS", 300.0, minimum=0)
# How often the banner script asks for the status (it is one small file read per request).
INCIDENT_BANNER_POLL_SECONDS = env_float("BACKSTOP_INCIDENT_BANNER_POLL_SECONDS", 15.0, minimum=0.5)

# --- Drafts ---------------------------------------------------------------------------------------
# A draft nobody touched for this long is deleted (a visitor's draft cookie lasts as long); sent ones go at once.
DRAFT_KEEP_DAYS = env_int("BACKSTOP_DRAFT_KEEP_DAYS", 30, minimum=1)
# How often each process that runs workflows deletes the expired ones.
DRAFT_CLEANUP_SECONDS = env_float("BACKSTOP_DRAFT_CLEANUP_SECONDS", 3600.0, minimum=1)
# Characters one draft holds in all its fields (a save's JSON must also fit BACKSTOP_MAX_BODY_BYTES).
DRAFT_MAX_CHARS = env_int("BACKSTOP_DRAFT_MAX_CHARS", 50_000, minimum=1000)
DRAFT_MAX_PER_OWNER = env_int("BACKSTOP_DRAFT_MAX_PER_OWNER", 200, minimum=1)

# --- Migrations: the deploy guard and snapshots (docs/decisions.md, "Deploy guard and sanitized snapshots") ----
# "on": `backstop migrate` (and `serve --migrate`, `worker --migrate`) applies a plan only after a passing
# `backstop preflight` of exactly that plan; production's default. "off": development, the demo and the tests.
MIGRATION_GUARD = env_choice("BACKSTOP_MIGRATION_GUARD", "on" if MODE == "production" else "off", {"on", "off"})
# How old the data a passing preflight ran on may be when the guard trusts it.
PREFLIGHT_MAX_AGE_HOURS = env_float("BACKSTOP_PREFLIGHT_MAX_AGE_HOURS", 24.0, minimum=0.01)
# The key of `backstop snapshot --sanitize`'s masks; empty: a new random key per snapshot.
SNAPSHOT_SECRET = env_str("BACKSTOP_SNAPSHOT_SECRET", "")

LOG_LEVEL = env_str("BACKSTOP_LOG_LEVEL", "WARNING").upper()
# One JSON object a line (what a log shipper reads) in production, plain text for a person at a terminal otherwise;
# both name the request or workflow on every line (backstop.lib.logs).
LOG_FORMAT = env_choice("BACKSTOP_LOG_FORMAT", "json" if MODE == "production" else "text", {"json", "text"})
LOGGING = logging_config(level=LOG_LEVEL, json_lines=LOG_FORMAT == "json")
# X-Request-ID from the client is kept only behind proxies of our own (they set it); otherwise every request gets a
# new id. Either way the response names it.
TRUST_REQUEST_ID = env_bool("BACKSTOP_TRUST_REQUEST_ID", TRUSTED_PROXY_COUNT > 0)

# --- Operations ------------------------------------------------------------------------------------
# A bearer token that may read /metrics (staff may too, signed in). Empty: staff only. backstop.monitoring checks it.
METRICS_TOKEN = env_str("BACKSTOP_METRICS_TOKEN", "")
# /readyz answers 503 when the oldest queued workflow has waited longer than this (0: queue lag not checked).
READY_MAX_QUEUE_LAG_SECONDS = env_float("BACKSTOP_READY_MAX_QUEUE_LAG_SECONDS", 300.0, minimum=0)
