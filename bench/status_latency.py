"""Status page under load during an incident: p50/p95/p99 of GET /status at a fixed arrival rate.

Starts `backstop serve --migrate` (SQLite in a temp directory) with the workspace provider failing, opens a live
incident with an update (so /status renders a real page), then sends GET /status open-loop at --rate requests a
second for --seconds (each request starts at its scheduled time, on a pool of threads with keep-alive connections),
and prints the latency percentiles and the rate achieved. The target (issue 20): p95 under 50 ms at 200 requests/s.
``--path /status/banner.json`` measures the banner's answer instead (what every open page polls), sent with a banner
token as the pages send it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from common import free_port, percentile, wait_until

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--path", default="/status", choices=["/status", "/status.json", "/status/banner.json"])
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="backstop-status-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BACKSTOP_DATA_DIR": str(data_dir), "BACKSTOP_FAULT_INJECTION": "1",
           "BACKSTOP_DEMO_PAGES": "1", "BACKSTOP_FAULTS": "workspace=error", "BACKSTOP_LOG_LEVEL": "WARNING",
           "BACKSTOP_BASE_URL": url}
    env.pop("DATABASE_URL", None)
    with open(data_dir / "serve.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "backstop.cli", "serve", "--migrate", "--port", str(port)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        assert wait_until(lambda: _up(url), timeout=120), (data_dir / "serve.log").read_text()
        code = ("from backstop.incidents import lifecycle\n"
                "incident, _ = lifecycle.open_incident(title='Workspace creation is failing', capability='workspace')\n"
                "lifecycle.post_update(incident_id=incident.pk, body='We are investigating.', state='investigating',"
                " staff=None, idempotency_key='bench')\n"
                "from backstop.incidents.status_page import write_status_file\nwrite_status_file()")
        subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", code], env=env, cwd=ROOT, check=True)
        latencies = _load(url, rate=args.rate, seconds=args.seconds, threads=args.threads, path=args.path)
    finally:
        server.terminate()
        server.wait(timeout=30)
    load = os.getloadavg()[0]
    print(f"GET {args.path} at {args.rate:g}/s for {args.seconds:g} s (load average at the end {load:.1f}):")
    print(f"  requests {len(latencies)}, achieved {len(latencies) / args.seconds:.0f}/s")
    for pct in (50, 95, 99):
        print(f"  p{pct} {percentile(latencies, pct) * 1000:.1f} ms")


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/status", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _load(url: str, *, rate: float, seconds: float, threads: int, path: str) -> list[float]:
    local = threading.local()
    latencies: list[float] = []
    late: list[float] = []  # requests this client could not start on time (its own threads were busy)
    lock = threading.Lock()
    start = time.monotonic() + 0.5

    def one(scheduled: float) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=10)
        delay = scheduled - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        began = time.monotonic()
        response = client.get(f"{url}{path}", headers={"X-Banner-Token": "0" * 32})
        response.raise_for_status()
        elapsed = time.monotonic() - began
        with lock:
            latencies.append(elapsed)
            if began - scheduled > 0.01:
                late.append(began - scheduled)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(one, start + i / rate) for i in range(int(rate * seconds))]:
            future.result()
    print(f"  {len(late)} requests started over 10 ms late (the client's own lag, not counted in the latency)")
    return latencies


if __name__ == "__main__":
    main()
