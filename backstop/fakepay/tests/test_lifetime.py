"""The demo's fakepay child stops when the demo dies, so the next demo can bind its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import ROOT, free_port, wait_for

PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-m", "backstop.cli", "fakepay", "--port", sys.argv[1], "--db", sys.argv[2],
                  "--exit-with-parent"])
time.sleep(120)
"""


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.TransportError:
        return False


def test_it_stops_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/payment_intents"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(port), str(tmp_path / "fakepay.sqlite3")], cwd=ROOT)
    try:
        wait_for(lambda: _answers(url), timeout=30, message="fakepay never answered")

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)

        wait_for(lambda: not _answers(url), timeout=15, message="fakepay outlived the process that started it")
    finally:
        if parent.poll() is None:
            parent.kill()
