"""The exports the lab has written: a log under the store root, and the dashboard's downloads.

* ``<store root>/exports/log/<id>.json``   one record per export, from the CLI or the dashboard (JSON only).
* ``<store root>/exports/<model>-<variant>-<id>/`` and ``.zip``   the dashboard's downloads; the newest one per
  model, task and variant is kept, older ones are removed when a new one is prepared.

The dashboard prepares a download by running ``python -m core export ... --zip --no-build`` in a child process:
the page never imports torch, a failure comes back as the command's one-line error, and a variant that left the
store is not rebuilt by a click.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ..errors import QlabError
from ..paths import PROJECT_ROOT, atomic_write_text, store_root

log = logging.getLogger("qlab.exports")
PREPARE_TIMEOUT_S = 900


def exports_dir(root=None) -> Path:
    return store_root(root) / "exports"


def _log_dir(root=None) -> Path:
    path = exports_dir(root) / "log"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(text)).name or str(text)).strip("-.")[:40] or "model"


def record(exported, origin: str = "cli", root=None) -> dict:
    """Log one finished export (a core.exporting.export.Exported); returns the record."""
    meta = exported.meta
    rec = {
        "id": uuid.uuid4().hex, "origin": origin, "created": time.time(),
        "model": meta["model"], "task": meta["task"], "variant": meta["variant"]["spec"], "recipe": meta["variant"]["recipe"],
        "family": meta["variant"]["family"], "runtime": meta["runtime"], "store_key": meta["store_key"],
        "folder": str(Path(exported.folder).resolve()), "bytes": exported.bytes,
        "zip": str(Path(exported.zip_path).resolve()) if exported.zip_path else None,
        "zip_bytes": Path(exported.zip_path).stat().st_size if exported.zip_path else None,
        "measured": meta.get("measured") is not None,
    }
    return _write(rec, root)


def _write(rec: dict, root=None) -> dict:
    atomic_write_text(_log_dir(root) / f"{rec['id']}.json", json.dumps(rec, indent=2))
    return rec


def list_exports(root=None) -> list[dict]:
    """Every logged export, newest first, with ``exists`` (its folder or zip is still on disk)."""
    out = []
    for path in _log_dir(root).glob("*.json"):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict) or not rec.get("id"):
            continue
        rec["exists"] = bool(rec.get("folder") and Path(rec["folder"]).is_dir()) or bool(rec.get("zip") and Path(rec["zip"]).is_file())
        out.append(rec)
    return sorted(out, key=lambda r: float(r.get("created") or 0), reverse=True)


def latest(model: str, task: str, variant: str, root=None, origin: str | None = None) -> dict | None:
    """The newest export of this model, task and variant that is still on disk (with a zip, for the dashboard)."""
    for rec in list_exports(root):
        if (rec.get("model"), rec.get("task"), rec.get("variant")) != (model, task, variant) or (origin and rec.get("origin") != origin):
            continue
        if rec.get("zip") and Path(rec["zip"]).is_file():
            return rec
    return None


def remove(rec: dict, root=None) -> None:
    """Delete a dashboard export's folder, zip and record (never a folder outside the store's exports/)."""
    base = exports_dir(root).resolve()
    for key in ("folder", "zip"):
        target = Path(rec[key]).resolve() if rec.get(key) else None
        if target is None or base not in target.parents:
            continue
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
    (_log_dir(root) / f"{rec['id']}.json").unlink(missing_ok=True)


def _one_line(stderr: str) -> str:
    lines = [line for line in (stderr or "").strip().splitlines() if line.startswith("error: ")]
    return lines[-1][len("error: "):] if lines else ""


def prepare_download(model: str, task: str, variant: str, *, root=None, max_bytes: int | None = None,
                     timeout: float = PREPARE_TIMEOUT_S, owner: str | None = None, owner_email: str | None = None) -> dict:
    """Export a stored variant as a zip for the dashboard (in a child process); returns its log record, which names
    who asked for it (``owner``, ``owner_email``: the signed-in person, with sign-in on).

    Raises QlabError with one line (no server paths) when the export is refused or fails.
    """
    root = store_root(root)
    out = exports_dir(root) / f"{_slug(model)}-{_slug(variant)}-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "core", "export", "--model", model, "--task", task, "--variant", variant, "--out", str(out),
           "--zip", "--no-build", "--origin", "dashboard"]
    if max_bytes:
        cmd += ["--max-mb", f"{max_bytes / 2**20:.3f}"]
    env = dict(os.environ, QLAB_CACHE_DIR=str(root),
               PYTHONPATH=str(PROJECT_ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(PROJECT_ROOT), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        shutil.rmtree(out, ignore_errors=True)
        raise QlabError(f"Preparing the download of '{variant}' took longer than {timeout / 60:.0f} minutes and was stopped; try again later.") from None
    if proc.returncode != 0:
        message = _one_line(proc.stderr).replace(str(root), "the store")
        if proc.returncode == 2 and message:
            raise QlabError(message)
        log.error("export of %s %s failed (exit %s):\n%s", model, variant, proc.returncode, proc.stderr[-4000:])
        raise QlabError(f"Preparing the download of '{variant}' failed (exit {proc.returncode}); the details are in the server log.")
    rec = next((r for r in list_exports(root) if r.get("folder") == str(out.resolve())), None)
    if rec is None:
        raise QlabError(f"The export of '{variant}' finished but left no record; try again.")
    if owner or owner_email:   # the child wrote the record; who asked for it is known here
        rec.update(owner=owner, owner_email=owner_email)
        _write({k: v for k, v in rec.items() if k != "exists"}, root)
    for old in list_exports(root):   # keep the newest dashboard download per model, task and variant
        if old["id"] != rec["id"] and old.get("origin") == "dashboard" and (old.get("model"), old.get("task"), old.get("variant")) == (model, task, variant):
            remove(old, root)
    return rec
