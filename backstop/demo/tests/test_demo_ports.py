"""Two `backstop demo` on one machine: each starts its own fakepay on a port of its own and charges through it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, free_port, wait_for


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fakepay_url(self) -> str:
        match = re.search(r"Payments: fakepay on (http://127\.0\.0\.1:\d+)", self.log())
        return match.group(1) if match else ""


def _demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("STRIPE_API_BASE", "BACKSTOP_PAYMENTS")}
    # The demo is one process on SQLite, whatever database the test run uses.
    return {**env, "DATABASE_URL": "", "BACKSTOP_RECONCILE_SCHEDULE": "", "BACKSTOP_LOG_LEVEL": "WARNING"}


@pytest.fixture
def demos(tmp_path: Path) -> Iterator[list[Demo]]:
    started: list[Demo] = []
    yield started
    for demo in started:
        if demo.process.poll() is None:
            demo.process.terminate()
            demo.process.wait(timeout=30)


def _start(demos: list[Demo], tmp_path: Path, name: str, *extra: str) -> Demo:
    port = free_port()
    data_dir = tmp_path / name
    data_dir.mkdir()
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "backstop.cli", "demo", "--port", str(port), "--data-dir", str(data_dir), *extra],
            env=_demo_env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    demo = Demo(process=process, port=port, data_dir=data_dir, log_path=log_path)
    demos.append(demo)
    return demo


def _up(demo: Demo) -> bool:
    assert demo.process.poll() is None, f"the demo exited:\n{demo.log()}"
    try:
        return httpx.get(f"{demo.url}/api/openapi.json", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def old_fixed_port_taken() -> Iterator[None]:
    """Port 12111, where every demo's fakepay used to listen, held by something else (or already busy)."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 12111))
        holder.listen(1)
    except OSError:
        pass  # busy already: all the better
    yield
    holder.close()


@pytest.mark.usefixtures("old_fixed_port_taken")
def test_it_runs_two_demos_at_once_each_with_its_own_fakepay_on_a_free_port(
    demos: list[Demo], tmp_path: Path
) -> None:
    first, second = _start(demos, tmp_path, "first"), _start(demos, tmp_path, "second")
    for demo in (first, second):
        wait_for(lambda demo=demo: _up(demo), timeout=120, message=f"the demo did not come up:\n{demo.log()}")

    ports = {first.fakepay_url(), second.fakepay_url()}
    assert len(ports) == 2 and "" not in ports, (first.log(), second.log())
    assert "http://127.0.0.1:12111" not in ports
    for n, demo in enumerate((first, second)):
        buy = {"product": "annual", "email": f"buyer{n}@example.com", "payment_method": "pm_card_visa"}
        paid = httpx.post(f"{demo.url}/api/checkout", json=buy, headers={"Idempotency-Key": f"two-demos-{n}"},
                          timeout=30)
        assert paid.status_code in (200, 202), paid.text
        reference = paid.json()["reference"]
        wait_for(lambda demo=demo, reference=reference: httpx.get(
            f"{demo.url}/api/orders/{reference}", timeout=10).json()["outcome"] == "paid", timeout=60,
            message=f"the order was not paid:\n{demo.log()}")
        # Each demo charged through its own processor: the payment is in its own fakepay and only there.
        emails = httpx.get(f"{demo.fakepay_url()}/v1/payment_intents", timeout=10,
                           auth=("sk_test_fakepay", "")).json()["data"]
        assert [intent["receipt_email"] for intent in emails] == [f"buyer{n}@example.com"]

    # Asked for a port another demo's fakepay holds, a third demo says so and stops, rather than charging elsewhere.
    taken = first.fakepay_url().rsplit(":", 1)[1]
    third = _start(demos, tmp_path, "third", "--fakepay-port", taken)
    assert third.process.wait(timeout=60) != 0
    assert f"fakepay cannot listen on port {taken}" in third.log()
