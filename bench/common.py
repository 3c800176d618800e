"""Helpers every bench script shares (run as ``python bench/<script>.py``, so this directory is on the path)."""

from __future__ import annotations

import os
import resource
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a sorted copy."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * pct / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def throwaway_database_name(server_url: str, default_prefix: str = "backstop_bench") -> str:
    """A fresh database name for a run, after the database named in ``server_url`` (``.../bk_me`` ->
    ``bk_me_bench_<random>``), so that people sharing a PostgreSQL server keep to their own names;
    ``backstop_bench_<random>`` when it names none or the maintenance database."""
    given = server_url.split("?", 1)[0].rsplit("/", 1)[1] if "/" in server_url.split("//", 1)[-1] else ""
    prefix = f"{given}_bench" if given and given != "postgres" else default_prefix
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


# --- CPU accounting: who spent what, read from /proc ----------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU of one process (all its threads) so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL process on this machine so far (its backends come and go; the sum is what counts)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().startswith("postgres"):
                total += process_cpu_seconds(int(entry.name))
        except OSError:
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent not idle so far, summed over its cores (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    guests = sum(fields[8:10])  # already counted in user and nice
    return (sum(fields) - idle - guests) / CLOCK_TICKS


def this_process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSpent:
    """Milliseconds of CPU per operation (a checkout, a signup) during one run, by whom."""

    by_part: dict[str, float]
    machine: float

def cpu_per_operation(before: dict[str, float], after: dict[str, float], count: int) -> CpuSpent:
    """What each part spent between two snapshots (``machine`` taken apart), in ms per operation."""
    spent = {part: (after[part] - before[part]) * 1000 / max(count, 1) for part in before}
    machine = spent.pop("machine")
    return CpuSpent(by_part=spent, machine=machine)
