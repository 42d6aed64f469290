"""Saved runs and their exports: every finished comparison is kept as JSON under ``<store root>/runs/``.

* ``<root>/runs/<run id>.json``   one report (JSON only; nothing is ever unpickled). Run ids are uuid4 hex:
                                   32 random hex digits, so a run can only be opened by someone given its id.
* ``<root>/runs/by_config/<key>.json``  {"run_id"}: the finished report for a comparison config, so asking
                                   the same comparison again is instant.

Exports: JSON and CSV (one row per variant x latency cell); the standalone HTML report, whose charts need plotly,
is core/charts/html_report.py (this module is storage: it imports no charts). Imports: a colleague's JSON report, size-capped,
parsed with ``json`` (depth-limited, no NaN) and checked against the report schema (core/reporting/schema.py: types,
ranges, lengths, known tasks and metrics) before it is saved as a run of its own; only the checked fields are kept.
A run records the owner that created it (a hash of the session's secret); hosted, only that owner may delete it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
import time
import uuid
from pathlib import Path

from ..errors import QlabError
from ..paths import atomic_write_text, store_root

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_IMPORT_BYTES = 20 * 2**20
MAX_DEPTH = 32            # nesting of an imported JSON document (a report is 5 deep)
HISTORY_KEY = "history"   # our bookkeeping inside a saved report: {"config_key", "imported", "saved", "origin_run_id", "owner"}


class HistoryError(QlabError):
    """A run id that does not exist, or a report file that is not a valid lab report."""


def runs_dir(root=None) -> Path:
    path = store_root(root) / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_run_id() -> str:
    return uuid.uuid4().hex


def valid_run_id(run_id) -> bool:
    return isinstance(run_id, str) and bool(RUN_ID.match(run_id))


def _is_uuid4(value) -> bool:
    if not valid_run_id(value):
        return False
    try:
        return uuid.UUID(hex=value).version == 4
    except ValueError:
        return False


def run_path(run_id: str, root=None) -> Path:
    if not valid_run_id(run_id):
        raise HistoryError(f"'{str(run_id)[:40]}' is not a run id; run ids are 32 hex characters, as in ?run=<id>.")
    return runs_dir(root) / f"{run_id}.json"


# -- config keys (result cache) ---------------------------------------------------------------
def digest_bytes(blob: bytes | None) -> str | None:
    return None if blob is None else hashlib.sha256(blob).hexdigest()


def _model_stamp(model: str) -> str | None:
    """For a local folder: names, sizes and mtimes of its weight/config files (cheap; changes when it is re-saved)."""
    path = Path(str(model)).expanduser()
    try:
        if not path.is_dir():
            return None
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json"))
        return hashlib.sha256(repr([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]).encode()).hexdigest()[:16]
    except OSError:
        return None


def config_key(config: dict, data_digest: str | None = None, *, machine: dict) -> str:
    """A stable key for "this comparison on this machine": the config (without the data path, which is a temp
    file), the data's content hash, and ``machine``: the CPU and the versions of every library its variants' families
    declare (the engine's ``job_key`` reads them; an upgraded xllamacpp makes a new key). Same key = same report is reusable."""
    cfg = {k: v for k, v in dict(config).items() if k not in ("data",)}
    blob = json.dumps({"config": cfg, "data": data_digest, "machine": machine, "model_stamp": _model_stamp(cfg.get("model", ""))},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def find_cached(key: str, root=None) -> str | None:
    """The run id of a finished report for this config key, if it is still saved."""
    path = runs_dir(root) / "by_config" / f"{key}.json"
    try:
        run_id = json.loads(path.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return run_id if valid_run_id(run_id) and run_path(run_id, root).is_file() else None


def remember(key: str, run_id: str, root=None) -> None:
    folder = runs_dir(root) / "by_config"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{key}.json", json.dumps({"run_id": run_id}))


def forget(key: str, root=None) -> None:
    try:
        (runs_dir(root) / "by_config" / f"{key}.json").unlink()
    except OSError:
        pass


# -- saving and loading -------------------------------------------------------------------------
def to_json(report: dict) -> str:
    """A report's JSON as the lab writes it: checked against the import schema first (core.reporting.schema)."""
    from ..reporting.schema import checked_json

    return checked_json(report)


def save_run(report: dict, *, key: str | None = None, root=None, imported: bool = False, origin_run_id: str | None = None,
             owner: str | None = None, owner_email: str | None = None) -> str:
    """Save a report as a new run; returns its id (a fresh uuid4 hex, also written into the report). ``owner``: who may
    delete it in hosted mode (``hosting.owner_id`` of the creating session)."""
    given = report.get("run_id")
    if not imported and _is_uuid4(given) and not run_path(given, root).exists():
        run_id = given  # the engine's own uuid4 id: the CLI and the dashboard name the run alike
    else:
        run_id = new_run_id()
        if given and given != run_id:
            origin_run_id = origin_run_id or str(given)
    record = dict(report)
    record["run_id"] = run_id
    record[HISTORY_KEY] = {"config_key": key, "imported": imported, "saved": time.time(), "origin_run_id": origin_run_id, "owner": owner}
    if owner_email:
        record[HISTORY_KEY]["owner_email"] = owner_email
    atomic_write_text(run_path(run_id, root), to_json(record))
    if key:
        remember(key, run_id, root)
    return run_id


def load_run(run_id: str, root=None) -> dict:
    path = run_path(run_id, root)
    if not path.is_file():
        raise HistoryError(f"No saved run '{run_id}' here; it may have been deleted, or it was saved on another machine (import its JSON on History).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        raise HistoryError(f"Saved run '{run_id}' is damaged (not valid JSON); delete it on the History page.") from None
    return validate_report(data, name=f"run {run_id}")


def _recorded(run_id: str, root, field: str) -> str | None:
    """A string our bookkeeping recorded in a saved run (None when absent, for older runs, or for unreadable ones)."""
    try:
        record = json.loads(run_path(run_id, root).read_text(encoding="utf-8"))
        value = (record.get(HISTORY_KEY) or {}).get(field)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def run_owner_email(run_id: str, root=None) -> str | None:
    """The email of the person who owns a run (sign-in on), if it was recorded."""
    return _recorded(run_id, root, "owner_email")


def run_owner(run_id: str, root=None) -> str | None:
    """The owner recorded in a saved run (None for runs saved before owners were recorded, or unreadable ones)."""
    return _recorded(run_id, root, "owner")


def delete_run(run_id: str, root=None, *, requester: str | None = None, pol=None, admin: bool = False, email: str | None = None) -> bool:
    """Delete a saved run. Hosted (``pol.owner_only_delete``), only the owner that created it may: anyone else, a
    holder of a share link included, gets a one-line HistoryError and the run stays."""
    from ..access import hosting

    path = run_path(run_id, root)
    existed = path.is_file()
    if existed and not hosting.may_delete(run_owner(run_id, root), requester, pol, admin=admin):
        if (requester or "").startswith("person:"):
            raise HistoryError(f"Run '{run_id[:8]}' belongs to someone else: only its owner or an admin can delete it.")
        raise HistoryError(f"Run '{run_id[:8]}' was not created in this session, so it cannot be deleted here "
                           "(only the session that ran or imported it can delete it).")
    if existed:
        path.unlink()
        from . import audit

        audit.record("deleted", requester, run_id, email=email, root=root)
    return existed


def created_time(report: dict) -> float | None:
    """The report's creation time as epoch seconds (accepts epoch numbers and ISO strings)."""
    value = report.get("created")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) and abs(value) < 1e11 else None
    if isinstance(value, str):
        try:
            parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=_dt.timezone.utc)
            return parsed.timestamp()
        except (ValueError, OverflowError):
            return None
    saved = (report.get(HISTORY_KEY) or {}).get("saved")
    return float(saved) if isinstance(saved, (int, float)) else None


def summary(report: dict) -> dict:
    env = report.get("environment") or {}
    hist = report.get(HISTORY_KEY) or {}
    created = created_time(report)
    try:
        when = _dt.datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M") if created else ""
    except (ValueError, OverflowError, OSError):
        created, when = None, ""
    return {
        "run_id": report.get("run_id"),
        "created": when,
        "created_ts": created or 0.0,
        "model": report.get("model", ""),
        "task": report.get("task", ""),
        "variants": ", ".join(str(r.get("variant")) for r in report.get("results") or []),
        "data": (report.get("data") or {}).get("name", ""),
        "cpu": env.get("cpu", ""),
        "threads": env.get("threads"),
        "recommended": (report.get("recommended") or {}).get("variant") or "",
        "imported": bool(hist.get("imported")),
        "owner": hist.get("owner") if isinstance(hist.get("owner"), str) else None,
        "owner_email": hist.get("owner_email") if isinstance(hist.get("owner_email"), str) else None,
    }


def list_runs(root=None, ids: list[str] | None = None) -> list[dict]:
    """Summaries of saved runs, newest first; ``ids`` restricts to those runs (a hosted visitor's own)."""
    folder = runs_dir(root)
    paths = [folder / f"{i}.json" for i in ids if valid_run_id(i)] if ids is not None else list(folder.glob("*.json"))
    out = []
    for path in paths:
        if not RUN_ID.match(path.stem) or not path.is_file():
            continue
        try:
            report = validate_report(json.loads(path.read_text(encoding="utf-8")), name=path.name)
            out.append(summary(report))
        except (OSError, ValueError, RecursionError, QlabError):
            continue
    return sorted(out, key=lambda s: s["created_ts"], reverse=True)


# -- validation and import ------------------------------------------------------------------------
def validate_report(data, name: str = "report", *, strict: bool = False) -> dict:
    """Check that ``data`` (parsed JSON) is a lab report against the schema (core/reporting/schema.py); raises a one-line
    HistoryError naming the first problem. ``strict`` (imports): no field the lab does not know."""
    from ..reporting import schema as report_schema

    problem = report_schema.check(data, strict=strict)
    if problem:
        raise HistoryError(f"'{_name(name)}' is not a Quantization Lab report: {problem}. Export reports with History > Download JSON.")
    return data


def _name(name) -> str:
    """A file name as shown in messages: its last component, short."""
    text = Path(str(name)).name or str(name)
    return text if len(text) <= 60 else text[:57] + "..."


def json_depth(value, limit: int) -> int:
    """Nesting depth of parsed JSON, stopping once past ``limit`` (iterative: no recursion to overflow)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _no_constants(word):
    raise ValueError(f"{word} is not a number in strict JSON")


def parse_report_bytes(blob: bytes, name: str = "upload") -> dict:
    """Bytes of an uploaded report -> a checked report dict (strict schema). JSON only: anything else is refused."""
    name = _name(name)
    if len(blob) > MAX_IMPORT_BYTES:
        raise HistoryError(f"'{name}' is {len(blob) / 2**20:.1f} MB; reports are at most {MAX_IMPORT_BYTES // 2**20} MB.")
    if not blob.strip():
        raise HistoryError(f"'{name}' is empty; choose a report exported with Download JSON.")
    if blob[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or blob[:4] == b"PK\x03\x04":
        raise HistoryError(f"'{name}' is a binary (pickle/zip) file; the lab imports JSON reports only.")
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HistoryError(f"'{name}' is not UTF-8 text; choose a report exported with Download JSON.") from None
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise HistoryError(f"'{name}' is nested too deeply to be a report (at most {MAX_DEPTH} levels); choose a report exported with Download JSON.") from None
    except ValueError as err:
        raise HistoryError(f"'{name}' is not valid JSON ({getattr(err, 'msg', str(err))[:80]} at line {getattr(err, 'lineno', '?')}); "
                           "choose a report exported with Download JSON.") from None
    if json_depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise HistoryError(f"'{name}' is nested too deeply to be a report (at most {MAX_DEPTH} levels); choose a report exported with Download JSON.")
    return validate_report(data, name=name, strict=True)


def import_report(blob: bytes, name: str = "upload", root=None, *, owner: str | None = None, owner_email: str | None = None) -> str:
    """Validate a colleague's JSON report and save it as a run here; returns the new run id."""
    report = parse_report_bytes(blob, name)
    origin = report.get("run_id") if valid_run_id(report.get("run_id")) else None
    report.pop(HISTORY_KEY, None)
    run_id = save_run(report, root=root, imported=True, origin_run_id=origin, owner=owner, owner_email=owner_email)
    from . import audit

    audit.record("imported", owner, run_id, email=owner_email, root=root, file=str(name)[:80])
    return run_id


# -- exports ------------------------------------------------------------------------------------
def export_json(report: dict) -> str:
    return to_json({k: v for k, v in report.items() if k != HISTORY_KEY})


def export_csv(report: dict) -> str:
    from ..reporting.csv_export import report_to_csv

    return report_to_csv({k: v for k, v in report.items() if k != HISTORY_KEY})
