"""A preflight's report as a terminal table, Markdown (a CI comment, a deploy ticket) or JSON (scripts)."""

from __future__ import annotations

import json
from typing import Any

from backstop.preflight.models import PreflightRun

FORMATS = ("table", "markdown", "json")
ROWS_SHOWN = 10  # per finding in table and Markdown; JSON carries every sampled row


def render(run: PreflightRun, *, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(as_json(run), indent=2, default=str, ensure_ascii=False)
    if fmt == "markdown":
        return _markdown(run)
    return _table(run)


def as_json(run: PreflightRun) -> dict[str, Any]:
    return {
        "passed": run.passed,
        "plan_fingerprint": run.plan_fingerprint,
        "vendor": run.vendor,
        "data_taken_at": run.data_taken_at.isoformat(),
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        **run.report,
    }


def _verdict(run: PreflightRun) -> str:
    return "PASSED" if run.passed else "FAILED"


def _copy_time(run: PreflightRun) -> str:
    seconds = run.report.get("copy", {}).get("seconds")
    return "" if seconds is None else f"  (copied in {seconds:.1f}s)"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _locks_text(locks: list[dict[str, Any]]) -> str:
    return ", ".join(f"{lock['mode']} on {lock['relation']} {lock['seconds']:.3f}s" for lock in locks) or "-"


def _row_text(row: dict[str, Any]) -> str:
    values = ", ".join(f"{name}={value!r}" for name, value in row.get("values", {}).items())
    key = f" (compared as {row['key']!r})" if "key" in row else ""
    return f"pk={row['pk']!r}: {values}{key}"


def _problems(entry: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(label, text, rows) for each check finding and lint finding of one migration, worst first."""
    found = []
    for check in entry["checks"]:
        found.append(("data", f"{check['message']}. Fix: {check['fix']}", check["rows"]))
    for lint in entry["lint"]:
        label = {"error": "lint error", "warning": "lint warning", "accepted": "accepted"}[lint["severity"]]
        text = f"{lint['title']}: {lint['operation']}"
        if lint["detail"]:
            text += f" ({lint['detail']})"
        if lint["severity"] != "accepted":
            text += f". {lint['recipe']}"
        found.append((label, text, []))
    return found


def _table(run: PreflightRun) -> str:
    report = run.report
    lines = [f"preflight {_verdict(run)}  plan {run.plan_fingerprint[:12]}  {run.vendor}  data taken at "
             f"{run.data_taken_at:%Y-%m-%d %H:%M:%S} UTC{_copy_time(run)}"]
    if report.get("error"):
        lines.append(f"error: {report['error']}")
    migrations = report.get("migrations", [])
    if migrations:
        width = max(len(entry["migration"]) for entry in migrations)
        lines.append(f"{'migration':<{width}}  {'result':<8}  {'time':>9}  locks")
        for entry in migrations:
            lines.append(f"{entry['migration']:<{width}}  {entry['status']:<8}  {_seconds(entry['seconds']):>9}  "
                         f"{_locks_text(entry['locks'])}")
            if entry["error"]:
                lines.append(f"    error: {entry['error']}")
            for label, text, rows in _problems(entry):
                lines.append(f"    {label}: {text}")
                lines += [f"      {_row_text(row)}" for row in rows[:ROWS_SHOWN]]
                if len(rows) > ROWS_SHOWN:
                    lines.append(f"      ... {len(rows) - ROWS_SHOWN} more in --format json")
    lines += [f"note: {note}" for note in report.get("notes", []) + report.get("copy", {}).get("notes", [])]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(run: PreflightRun) -> str:
    report = run.report
    lines = [f"## Migration preflight: {_verdict(run)}", "",
             f"Plan `{run.plan_fingerprint[:12]}` on {run.vendor}, data taken at "
             f"{run.data_taken_at:%Y-%m-%d %H:%M:%S} UTC{_copy_time(run)}.", ""]
    if report.get("error"):
        lines += [f"**Error:** {_cell(report['error'])}", ""]
    migrations = report.get("migrations", [])
    if migrations:
        lines += ["| migration | result | time | locks |", "| --- | --- | --- | --- |"]
        lines += [f"| `{entry['migration']}` | {entry['status']} | {_seconds(entry['seconds'])} | "
                  f"{_cell(_locks_text(entry['locks']))} |" for entry in migrations]
        lines.append("")
    for entry in migrations:
        problems = _problems(entry)
        if not problems and not entry["error"]:
            continue
        lines += [f"### `{entry['migration']}`", ""]
        if entry["error"]:
            lines += [f"**{entry['status']}:** {_cell(entry['error'])}", ""]
        for label, text, rows in problems:
            lines.append(f"- **{label}**: {_cell(text)}")
            lines += [f"  - `{_cell(_row_text(row))}`" for row in rows[:ROWS_SHOWN]]
        lines.append("")
    lines += [f"> {note}" for note in report.get("notes", []) + report.get("copy", {}).get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"
