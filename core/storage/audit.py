"""The audit log: one JSON line per action (ran, cancelled, deleted, exported, imported, shared, revoked, signed in),
appended to ``<store root>/audit.jsonl`` and never rewritten.

    python -m core audit [--json] [--since 2026-12-01 | 24h | 7d]

Each line: ``{"t": epoch seconds, "time": ISO UTC, "action", "who": owner key, "email", "target", ...details}``.
Appends take a file lock and write one line with one ``write`` on an ``O_APPEND`` descriptor, so concurrent writers
(the server's sessions, job children, the CLI) never interleave within a line.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import time
from pathlib import Path

from ..errors import QlabError
from ..paths import store_root

FILE = "audit.jsonl"
ACTIONS = ("signed-in", "refused", "ran", "cancelled", "deleted", "exported", "imported", "shared", "revoked")


def audit_path(root=None) -> Path:
    return store_root(root) / FILE


def record(action: str, who: str | None, target: str | None = None, *, email: str | None = None, root=None, **details) -> dict:
    """Append one line; returns it."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    now = time.time()
    line = {"t": round(now, 3), "time": _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat(timespec="seconds"),
            "action": action, "who": who, "email": email, "target": target}
    line.update({k: v for k, v in details.items() if v is not None})
    path = audit_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(line, sort_keys=False, default=str) + "\n").encode("utf-8")
    from filelock import FileLock

    with FileLock(str(path) + ".lock", timeout=30):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    return line


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``24h``, ``7d``, ``30m`` or an ISO date/time -> epoch seconds; None for None; a one-line error otherwise."""
    if not text:
        return None
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", text)
    if match:
        return now - int(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[match.group(2)]
    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise QlabError(f"--since {text!r} is neither a duration (30m, 24h, 7d) nor a date (2026-12-01 or 2026-12-01T09:00).") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.timestamp()


def read(root=None, since: float | None = None, limit: int | None = None) -> list[dict]:
    """The log's lines (oldest first), from ``since``; the last ``limit`` of them. A damaged line is skipped."""
    path = audit_path(root)
    if not path.is_file():
        return []
    out = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for raw in lines:
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict) and (since is None or float(line.get("t") or 0) >= since):
                out.append(line)
    return out[-limit:] if limit else out


def format_line(line: dict) -> str:
    details = {k: v for k, v in line.items() if k not in ("t", "time", "action", "who", "email", "target")}
    extra = " " + " ".join(f"{k}={v}" for k, v in details.items()) if details else ""
    return f"{line.get('time')}  {line.get('action', '?'):<9}  {line.get('email') or line.get('who') or '-'}  {line.get('target') or '-'}{extra}"
