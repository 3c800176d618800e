"""The `backstop` command: demo, serve, worker; anything else goes to Django's management commands."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from backstop.lib.heap import freeze_startup_objects

DEMO_INBOUND_SIGNING_KEY = "demo-inbound-signing-key"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backstop.settings")
    import django

    django.setup()


def _check_settings(call_command: Callable[..., object]) -> None:
    """The system checks, refusing to start on an error; their report goes to the log (one record, so one JSON line
    when the logs are JSON), and only when it says something."""
    import io

    report = io.StringIO()
    # Both streams: Django writes a report with warnings to stderr, which left the log an empty record beside it.
    call_command("check", fail_level="ERROR", stdout=report, stderr=report)
    if "no issues" not in report.getvalue():
        logging.getLogger("backstop.cli").warning("%s", report.getvalue().strip())


def _prepare(*, migrate: bool, command: str) -> None:
    from django.conf import settings
    from django.core.management import CommandError, call_command

    Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
    _check_settings(call_command)
    if migrate:
        # `backstop migrate` is behind the deploy guard (backstop/preflight/guard.py): in production it refuses a plan
        # no recent preflight passed, and the process does not start on a schema it was not cleared to change.
        try:
            call_command("migrate", interactive=False, verbosity=0)
        except CommandError as refused:
            raise SystemExit(f"backstop {command} --migrate: {refused}") from refused
    if settings.INITIAL_FAULTS:
        from backstop.demo.faults import parse_faults
        from backstop.demo.models import FaultSetting

        FaultSetting.objects.set_modes(parse_faults(settings.INITIAL_FAULTS))


def _serve_http(host: str, port: int, threads: int, *, listening: socket.socket | None = None) -> None:
    from django.conf import settings
    from django.urls import get_resolver
    from waitress import serve

    from backstop.wsgi import application

    # Proxy headers are read in one place, ``lib.http.client_ip`` (BACKSTOP_TRUSTED_PROXY_COUNT): waitress passes them
    # on only when the site says it stands behind proxies of its own, and drops them otherwise.
    clear = settings.TRUSTED_PROXY_COUNT == 0
    # Every view module loaded now rather than at the first request, so that it is frozen with the rest: what exists
    # once the process has started lives as long as it does, and full collections need not walk it again. (Reading
    # the patterns imports the URLconf and its views; the system checks already ran in the first process.)
    get_resolver().url_patterns  # noqa: B018
    freeze_startup_objects()
    if listening is not None:  # waitress refuses a host and port beside the socket
        serve(application, sockets=[listening], threads=threads, ident="backstop", clear_untrusted_proxy_headers=clear)
    else:
        serve(application, host=host, port=port, threads=threads, ident="backstop", clear_untrusted_proxy_headers=clear)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket every web process of one `backstop serve` accepts on (the kernel hands each new
    connection to one of them)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    try:
        listening = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as error:
        raise SystemExit(f"backstop serve: cannot listen on {host}:{port}: {error.strerror}") from error
    listening.setblocking(False)
    return listening


def _stop_on_sigterm() -> None:
    def handle(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handle)


def _run_until_stopped(run: Callable[[], object], *, then: Callable[[], None]) -> NoReturn:
    """Run the process's main loop until SIGTERM or Ctrl-C, clean up with ``then``, and end the process at once.

    The interpreter's normal exit joins every workflow thread, and one waiting out a retry (minutes, or an hour for a
    message that keeps failing) would hold the process that long after SIGTERM. Workflows are durable: whatever was
    under way resumes in this executor's next start, or in a peer that takes it over.
    """
    status = 0
    try:
        run()
    except (SystemExit, KeyboardInterrupt):
        pass
    except Exception:
        traceback.print_exc()
        status = 1
    finally:
        then()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(status)


def run_demo(args: argparse.Namespace) -> None:
    os.environ["BACKSTOP_DATA_DIR"] = str(Path(args.data_dir).resolve())
    os.environ.setdefault("BACKSTOP_FAULT_INJECTION", "1")
    os.environ.setdefault("BACKSTOP_DEMO_PAGES", "1")
    os.environ.setdefault("BACKSTOP_BASE_URL", f"http://127.0.0.1:{args.port}")
    os.environ.setdefault("BACKSTOP_EXECUTOR_ID", "demo")
    # The demo mailbox answers as the customer through the Mailgun inbound webhook, signed with this key.
    os.environ.setdefault("BACKSTOP_MAILGUN_WEBHOOK_SIGNING_KEY", DEMO_INBOUND_SIGNING_KEY)
    # Before Django reads its settings: the web process must be pointed at the fakepay this demo starts.
    fakepay_socket = _demo_fakepay_socket(args.fakepay_port)
    _setup_django()
    _prepare(migrate=True, command="demo")
    from backstop.accounts.staff import ensure_staff_account
    from backstop.demo.tour import DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD
    from backstop.runtime import engine

    ensure_staff_account(email=DEMO_STAFF_EMAIL, password=DEMO_STAFF_PASSWORD)
    fakepay = _start_demo_fakepay(Path(args.data_dir).resolve(), web_port=args.port, listening=fakepay_socket)
    engine.launch(role="demo")
    print(f"Backstop demo on http://127.0.0.1:{args.port}  (the tour: /, fault panel: /demo/faults, "
          "mailbox: /demo/mailbox)")
    print(f"Staff sign-in: {DEMO_STAFF_EMAIL} / {DEMO_STAFF_PASSWORD}", flush=True)
    _stop_on_sigterm()

    def stop() -> None:
        engine.shutdown()
        if fakepay is not None:
            fakepay.terminate()
            fakepay.wait(timeout=10)

    _run_until_stopped(lambda: _serve_http(args.host, args.port, args.threads), then=stop)


def _demo_fakepay_socket(port: int | None) -> socket.socket | None:
    """The listening socket of the demo's fakepay, opened here and handed to the child, and STRIPE_API_BASE set to it.

    The port is ``--fakepay-port``, else the one STRIPE_API_BASE names, else any free one: two demos on one machine
    (or a demo beside the test suite's servers) each get their own. Holding the socket from the moment the port is
    chosen means nothing else can take it before fakepay listens. None when the demo starts no fakepay: it charges
    through Stripe, or STRIPE_API_BASE names a processor on another machine.
    """
    if os.environ.get("BACKSTOP_PAYMENTS", "fakepay").strip().lower() not in ("", "fakepay"):
        return None
    configured = os.environ.get("STRIPE_API_BASE", "").strip().rstrip("/")
    if configured:
        address = urlsplit(configured)
        local = address.hostname in LOOPBACK_NAMES and address.port is not None
        if port is None and not local:
            return None
        if port is not None and (not local or address.port != port):
            raise SystemExit(f"backstop demo: --fakepay-port {port} and STRIPE_API_BASE={configured} disagree")
        port = address.port
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listening.bind(("127.0.0.1", port or 0))
    except OSError as error:
        listening.close()
        raise SystemExit(f"backstop demo: fakepay cannot listen on port {port}: {error.strerror}") from error
    listening.listen(128)
    os.environ["STRIPE_API_BASE"] = f"http://127.0.0.1:{listening.getsockname()[1]}"
    return listening


def _start_demo_fakepay(
    data_dir: Path, *, web_port: int, listening: socket.socket | None
) -> subprocess.Popen[bytes] | None:
    """The demo's payment processor: `backstop fakepay` as a child process on the socket the demo opened for it,
    its events sent to the demo."""
    from django.conf import settings

    if settings.PAYMENTS_PROVIDER != "fakepay":
        return None
    if listening is None:
        print(f"Payments: the processor at {settings.STRIPE_API_BASE} (STRIPE_API_BASE); no fakepay started",
              flush=True)
        return None
    print(f"Payments: fakepay on {settings.STRIPE_API_BASE} (checkout: /checkout)", flush=True)
    child = subprocess.Popen([
        sys.executable, "-m", "backstop.cli", "fakepay", "--listen-fd", str(listening.fileno()),
        "--db", str(data_dir / "fakepay.sqlite3"),
        "--webhook-url", f"http://127.0.0.1:{web_port}/api/webhooks/payments", "--exit-with-parent",
    ], pass_fds=(listening.fileno(),))
    listening.close()  # the child holds its own copy; the demo never accepts on it
    return child


def _record_start_up() -> None:
    """The deploy on the incidents' timeline, and the status page's file written fresh (it may predate the code)."""
    from django.db import DatabaseError

    from backstop.incidents.deploys import record_serve_start
    from backstop.incidents.status_page import write_status_file

    try:
        record_serve_start()
        write_status_file()
    except (DatabaseError, OSError):  # the record is for people; serving must not wait on it
        logging.getLogger("backstop.cli").exception("the deploy or the status file could not be recorded")


def _record_migrations(*, since: float) -> None:
    """`backstop migrate` went through: the migrations it applied, as a deploy on the incidents' timeline."""
    import datetime as dt

    from django.db import DatabaseError, connection

    from backstop.incidents.deploys import migrations_applied_since, record_deploy

    try:
        if "incidents_incidentevent" not in connection.introspection.table_names():
            return  # migrated to a point before the timeline exists: nowhere to record it yet
        applied = migrations_applied_since(dt.datetime.fromtimestamp(since, tz=dt.UTC))
        if applied:
            record_deploy(migrations=applied, source="migrate")
    except DatabaseError:  # the record is for people; the migration itself went through
        logging.getLogger("backstop.cli").exception("the migrations applied could not be recorded as a deploy")


def run_serve(args: argparse.Namespace) -> None:
    _setup_django()
    if args.listen_fd is not None:
        _run_web_process(args)
    from django.conf import settings

    from backstop.runtime import engine

    # Refused before anything is done: a serve that will not start must not have migrated the database first.
    if args.web_processes < 1:
        raise SystemExit("backstop serve: --web-processes must be 1 or more")
    if args.web_processes > 1 and settings.SERVE_WORKFLOWS == "inside":
        # Each process would run its own workflow engine on the one SQLite file, whose write lock they would fight for.
        raise SystemExit("backstop serve: --web-processes above 1 needs the workflows in a process of their own "
                         "(PostgreSQL's default, or BACKSTOP_SERVE_WORKFLOWS=process or none)")
    _prepare(migrate=args.migrate, command="serve")
    worker: ChildProcess | None = None
    if settings.SERVE_WORKFLOWS == "inside":
        engine.launch(role="web")
    else:
        engine.prepare_system_database()
    if settings.SERVE_WORKFLOWS == "process":
        worker_id = f"{engine.default_executor_id('web')}-workflows"
        worker = ChildProcess(name=f"workflow worker {worker_id}",
                              args=["worker", "--exit-with-parent"],
                              # The starting faults were set once by the server; a restarted worker must not undo later
                              # changes.
                              env={"BACKSTOP_EXECUTOR_ID": worker_id, "BACKSTOP_FAULTS": ""})
        worker.start()
    listening: socket.socket | None = None
    web: list[ChildProcess] = []
    if args.web_processes > 1:
        # One interpreter runs one request's Python at a time: more cores need more processes. They share one listening
        # socket, opened here; this process serves on it too.
        listening = _listen(args.host, args.port)
        web = [ChildProcess(name=f"web process {n + 2}", pass_fds=(listening.fileno(),),
                            args=["serve", "--listen-fd", str(listening.fileno()), "--threads", str(args.threads)],
                            env={"BACKSTOP_FAULTS": ""})
               for n in range(args.web_processes - 1)]
        for process in web:
            process.start()
    _record_start_up()
    print(f"Backstop serving on http://{args.host}:{args.port} (workflows: {settings.SERVE_WORKFLOWS}, "
          f"web processes: {args.web_processes})", flush=True)
    _stop_on_sigterm()

    def stop() -> None:
        engine.shutdown()
        for child in [*web, *([worker] if worker else [])]:
            child.stop()

    _run_until_stopped(lambda: _serve_http(args.host, args.port, args.threads, listening=listening), then=stop)


def _run_web_process(args: argparse.Namespace) -> NoReturn:
    """One more web process of a `backstop serve --web-processes N`: the parent migrated, started the workflows and
    opened the socket; this one only answers requests on it, and ends with the parent."""
    _exit_when_parent_dies()
    listening = socket.socket(fileno=args.listen_fd)
    listening.setblocking(False)
    _stop_on_sigterm()
    _run_until_stopped(lambda: _serve_http(args.host, args.port, args.threads, listening=listening), then=lambda: None)


class ChildProcess:
    """A `backstop` child of `backstop serve` (its workflow worker, its other web processes): started again if it
    dies, ended when the server ends.

    A worker's executor id stays the same across restarts, so a restarted worker recovers its own pending workflows at
    once.
    """

    # A child that keeps dying young (a bad setting, the database down) is started again less and less often.
    RESTART_PAUSE_SECONDS = 1.0
    MAX_RESTART_PAUSE_SECONDS = 60.0
    LIVED_LONG_ENOUGH_SECONDS = 60.0

    def __init__(self, *, name: str, args: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.pass_fds = pass_fds
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._keep_running, name="backstop-child-watch", daemon=True).start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self.process = subprocess.Popen([sys.executable, "-m", "backstop.cli", *self.args],
                                            env={**os.environ, **self.env}, pass_fds=self.pass_fds)

    def _keep_running(self) -> None:
        """Wait on the child and start it again when it ends (this thread lives as long as the server does, which the
        kernel's parent-death signal needs: it fires when the thread that started the child ends)."""
        pause = self.RESTART_PAUSE_SECONDS
        while not self._stopping.is_set():
            process = self.process
            assert process is not None
            started = time.monotonic()
            status = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= self.LIVED_LONG_ENOUGH_SECONDS:
                pause = self.RESTART_PAUSE_SECONDS
            print(f"{self.name} exited with status {status}; starting it again in {pause:g} s",
                  file=sys.stderr, flush=True)
            self._stopping.wait(pause)
            pause = min(pause * 2, self.MAX_RESTART_PAUSE_SECONDS)
            self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def run_worker(args: argparse.Namespace) -> None:
    _setup_django()
    if args.exit_with_parent:
        _exit_when_parent_dies()
    _prepare(migrate=args.migrate, command="worker")
    from backstop.runtime import engine

    executor = engine.launch(role="worker")
    freeze_startup_objects()
    print(f"Backstop worker {executor} running workflows", flush=True)
    _stop_on_sigterm()
    _run_until_stopped(threading.Event().wait, then=engine.shutdown)


def _exit_when_parent_dies() -> None:
    """A child (the demo's fakepay, serve's worker) stops with its parent, even when the parent is killed.

    On Linux the kernel sends SIGTERM the moment the parent dies; elsewhere a thread looks once a second.
    """
    parent = os.getppid()
    if sys.platform == "linux":
        import ctypes

        set_parent_death_signal = 1  # PR_SET_PDEATHSIG
        ctypes.CDLL(None, use_errno=True).prctl(set_parent_death_signal, signal.SIGTERM)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def run_fakepay(args: argparse.Namespace) -> None:
    """The local fake payment processor: its own process and SQLite file, no Django."""
    from backstop.fakepay import server

    _stop_on_sigterm()
    if args.exit_with_parent:
        _exit_when_parent_dies()
    server.serve(
        host=args.host,
        port=args.port,
        listen_fd=args.listen_fd,
        db_path=Path(args.db) if args.db else None,
        webhook_urls=args.webhook_url,
        webhook_secret=args.webhook_secret,
        allow_reset=args.allow_reset,
    )


def build_parser() -> argparse.ArgumentParser:
    """The command's own subcommands (the docs' commands are checked against it: docs/runbooks/)."""
    parser = argparse.ArgumentParser(prog="backstop", description=__doc__)
    commands = parser.add_subparsers(dest="command")

    demo = commands.add_parser("demo", help="migrate, seed a staff user, serve with local fake providers")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--data-dir", default=os.environ.get("BACKSTOP_DATA_DIR", "var"))
    demo.add_argument("--threads", type=int, default=16)
    demo.add_argument("--fakepay-port", type=int, default=None,
                      help="port of the demo's fakepay (default: the one STRIPE_API_BASE names, else a free one)")
    demo.set_defaults(run=run_demo)

    serve = commands.add_parser("serve", help="web server and workflow runner, providers from settings")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--threads", type=int, default=16)
    serve.add_argument("--migrate", action="store_true",
                       help="apply migrations first (behind the deploy guard, as `backstop migrate`)")
    serve.add_argument("--web-processes", type=int, default=1,
                       help="processes answering requests on the one port (a Python process uses one core at a time); "
                            "above 1 needs the workflows outside them (PostgreSQL's default)")
    # A web process started by another `backstop serve --web-processes N`, accepting on the socket it inherited.
    serve.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(run=run_serve)

    worker = commands.add_parser("worker", help="workflow runner only")
    worker.add_argument("--migrate", action="store_true",
                        help="apply migrations first (behind the deploy guard, as `backstop migrate`)")
    worker.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it ends")
    worker.set_defaults(run=run_worker)

    fakepay = commands.add_parser("fakepay", help="local fake payment processor speaking Stripe's API")
    fakepay.add_argument("--port", type=int, default=12111)
    fakepay.add_argument("--host", default="127.0.0.1")
    fakepay.add_argument("--listen-fd", type=int, default=None,
                         help="accept on this inherited listening socket instead of --host/--port (the demo's)")
    fakepay.add_argument("--db", help="SQLite file (default: $BACKSTOP_DATA_DIR or ./var, fakepay.sqlite3)")
    fakepay.add_argument("--webhook-url", action="append", default=[], help="POST events here (repeatable)")
    fakepay.add_argument("--webhook-secret", default="whsec_fakepay_local", help="signs the Stripe-Signature")
    fakepay.add_argument("--allow-reset", action="store_true", help="enable POST /_fakepay/reset")
    fakepay.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it ends")
    fakepay.set_defaults(run=run_fakepay)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if argv and argv[0] not in {"demo", "serve", "worker", "fakepay", "-h", "--help"}:
        _setup_django()
        from django.core.management import execute_from_command_line

        started = time.time()
        execute_from_command_line(["backstop", *argv])
        if argv[0] == "migrate" and "--plan" not in argv and "--check" not in argv:
            _record_migrations(since=started)
        return
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return
    args.run(args)


if __name__ == "__main__":
    main()
