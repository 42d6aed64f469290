"""Saved runs and their exports: every finished comparison is kept as JSON under ``<store root>/runs/``.

* ``<root>/runs/<run id>.json``   one report (JSON only; nothing is ever unpickled). Run ids are uuid4 hex:
                                   32 random hex digits, so a run can only be opened by someone given its id.
* ``<root>/runs/by_config/<key>.json``  {"run_id"}: the finished report for a comparison config, so asking
                                   the same comparison again is instant.

Exports: JSON, CSV (one row per variant x latency cell) and a standalone HTML report whose plotly charts
carry plotly.js inline (it opens offline, no CDN). Imports: a colleague's JSON report, size-capped,
parsed with ``json`` (depth-limited, no NaN) and checked against the report schema (core/report_schema.py: types,
ranges, lengths, known tasks and metrics) before it is saved as a run of its own; only the checked fields are kept.
A run records the owner that created it (a hash of the session's secret); hosted, only that owner may delete it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import math
import re
import time
import uuid
from pathlib import Path

from .errors import QlabError
from .paths import atomic_write_text, store_root

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


def config_key(config: dict, data_digest: str | None = None, *, machine: dict | None = None) -> str:
    """A stable key for "this comparison on this machine": the config (without the data path, which is a temp
    file), the data's content hash, the machine and library versions. Same key = same report is reusable."""
    cfg = {k: v for k, v in dict(config).items() if k not in ("data",)}
    if machine is None:
        from . import env

        info = env.cpu_info()
        machine = {"cpu": info["model"], "cores": info["logical_cores"], "versions": env.library_versions()}
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
def _clean(value):
    """JSON-safe copy: NaN/inf become None (strict JSON), tuples become lists, numpy scalars become numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return str(value)


def to_json(report: dict) -> str:
    return json.dumps(_clean(report), indent=2, sort_keys=False, allow_nan=False)


def save_run(report: dict, *, key: str | None = None, root=None, imported: bool = False, origin_run_id: str | None = None,
             owner: str | None = None) -> str:
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


def run_owner(run_id: str, root=None) -> str | None:
    """The owner recorded in a saved run (None for runs saved before owners were recorded, or unreadable ones)."""
    try:
        record = json.loads(run_path(run_id, root).read_text(encoding="utf-8"))
        owner = (record.get(HISTORY_KEY) or {}).get("owner")
    except (OSError, ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None


def delete_run(run_id: str, root=None, *, requester: str | None = None, pol=None) -> bool:
    """Delete a saved run. Hosted (``pol.owner_only_delete``), only the owner that created it may: anyone else, a
    holder of a share link included, gets a one-line HistoryError and the run stays."""
    from . import hosting

    path = run_path(run_id, root)
    existed = path.is_file()
    if existed and not hosting.may_delete(run_owner(run_id, root), requester, pol):
        raise HistoryError(f"Run '{run_id[:8]}' was not created in this session, so it cannot be deleted here "
                           "(only the session that ran or imported it can delete it).")
    if existed:
        path.unlink()
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
    """Check that ``data`` (parsed JSON) is a lab report against the schema (core/report_schema.py); raises a one-line
    HistoryError naming the first problem. ``strict`` (imports): no field the lab does not know."""
    from . import report_schema

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


def import_report(blob: bytes, name: str = "upload", root=None, *, owner: str | None = None) -> str:
    """Validate a colleague's JSON report and save it as a run here; returns the new run id."""
    report = parse_report_bytes(blob, name)
    origin = report.get("run_id") if valid_run_id(report.get("run_id")) else None
    report.pop(HISTORY_KEY, None)
    return save_run(report, root=root, imported=True, origin_run_id=origin, owner=owner)


# -- exports ------------------------------------------------------------------------------------
def export_json(report: dict) -> str:
    return to_json({k: v for k, v in report.items() if k != HISTORY_KEY})


def export_csv(report: dict) -> str:
    from .report import report_to_csv

    return report_to_csv({k: v for k, v in report.items() if k != HISTORY_KEY})


def _table_html(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if isinstance(value, float):
                value = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
            cells.append(f"<td>{html.escape('' if value is None else str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _throughput_html(report: dict) -> str:
    """The whole-dataset throughput table (sorted against unsorted, with spread and padding); empty when not measured."""
    from .report import throughput_heading, throughput_rows

    rows = throughput_rows({k: v for k, v in report.items() if k != HISTORY_KEY})
    if not rows:
        return ""
    for row in rows:
        row["padding"] = " -> ".join(f"{v:.0%}" for v in (row["padding_unsorted"], row["padding_sorted"])) if row["padding_sorted"] is not None else "n/a"
    table = _table_html(rows, [("variant", "Variant"), ("sorted_range", "Sorted by length (texts/s)"), ("unsorted_range", "Data order (texts/s)"),
                               ("passes", "Passes per mode"), ("padding", "Padding, unsorted -> sorted"), ("words", "Verdict")])
    return f"<h2>Whole-dataset throughput</h2><p>{html.escape(throughput_heading(rows))}.</p>{table}"


def export_html(report: dict, _plotlyjs: bool = True) -> str:
    """A standalone HTML report: environment, table against fp32, notes and every chart, with plotly.js inline.
    A comparison across hardware targets gets the cross-hardware chart and table, then one such section per target."""
    from . import charts

    if report.get("hardware"):
        return _export_html_across(report)
    env = report.get("environment") or {}
    figures = charts.compare_figures(report)
    parts = []
    for i, fig in enumerate(figures.values()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0 and _plotlyjs), config={"displaylogo": False, "responsive": True}))
    rows = charts.reference_rows(report)
    for row in rows:
        row["p50"] = row.get("p50_ms")
    speed = "p50 decode time per token (ms)" if charts.is_generation(report) else "p50 latency (ms)"
    table = _table_html(rows, [("variant", "Variant"), ("words", "Against fp32"), ("p50", speed),
                               ("size_mb", "Size (MB)"), ("quality", charts.quality_spec(report)[0])])
    tput_html = _throughput_html(report)
    rec = report.get("recommended") or {}
    rec_html = (f"<p class='rec'>Recommended: <b>{html.escape(str(rec.get('variant')))}</b> — {html.escape(str(rec.get('reason', '')))}</p>"
                if rec.get("variant") else "<p class='rec'>No variant met the quality budgets; fp32 stays the choice.</p>")
    notes = []
    for r in report.get("results") or []:
        for note in r.get("notes") or []:
            notes.append(f"<li><b>{html.escape(r['variant'])}</b>: {html.escape(note)}</li>")
        if r.get("error"):
            notes.append(f"<li><b>{html.escape(r['variant'])}</b> failed: {html.escape(str(r['error']))}</li>")
    env_rows = [
        ("CPU", env.get("cpu")), ("Instruction sets", ", ".join(env.get("instruction_sets") or []) or "none of note"),
        ("Cores / threads", f"{env.get('cores')} / {env.get('threads')}"), ("Device", env.get("device")),
        ("Quantized engine", env.get("quantized_engine")),
        ("Libraries", ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items())),
        ("Data", f"{(report.get('data') or {}).get('name', '')} ({(report.get('data') or {}).get('rows', '?')} rows)"),
        ("Run", f"{report.get('run_id', '')} · {report.get('created', '')}"),
    ]
    env_html = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in env_rows)
    title = f"Quantization Lab — {report.get('model', '')} ({report.get('task', '')})"
    body = f"""{rec_html}
<h2>Machine</h2><table>{env_html}</table>
<h2>Against the fp32 reference</h2>{table}
{tput_html}
<h2>Charts</h2>{''.join(f'<div class="chart">{p}</div>' for p in parts)}
<h2>Notes</h2><ul>{''.join(notes) or '<li>None.</li>'}</ul>"""
    return _html_page(title, body, "Exported from Quantization Lab. Timings are from the machine above; they do not transfer to other hardware.")


def _html_page(title: str, body: str, footer: str) -> str:
    """A standalone page with the export's style: the title as heading, ``body`` (HTML), ``footer`` (text)."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:Inter,'Source Sans Pro',Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}}
h1{{font-size:1.6rem}} h2{{font-size:1.2rem;margin-top:2rem}}
table{{border-collapse:collapse;margin:.5rem 0 1rem}} th,td{{border:1px solid #ddd;padding:.35rem .6rem;text-align:left;font-size:.9rem}}
th{{background:#f5f5f5}} .rec{{background:#fff7e0;border-left:4px solid #f2a900;padding:.5rem .8rem}}
.chart{{margin:1rem 0}} section{{border-top:2px solid #eee;margin-top:2rem}} footer{{color:#777;font-size:.8rem;margin-top:2rem}}
</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
<footer>{html.escape(footer)}</footer>
</body></html>"""


def _export_html_across(report: dict) -> str:
    """export_html for a comparison across hardware targets (see there)."""
    from . import charts
    from .report import Report, cross_hardware_rows

    head = charts.hardware_speedup_figure(report).to_html(full_html=False, include_plotlyjs=True, config={"displaylogo": False, "responsive": True})
    rows = [dict(r, target=r.get("name"), speed=r.get("speedup"), rec="★" if r.get("recommended") else "") for r in cross_hardware_rows(report)]
    table = _table_html(rows, [("target", "Target"), ("isa", "Instruction sets"), ("variant", "Variant"), ("p50_ms", "p50 latency (ms)"),
                               ("speed", "x fp32 speed"), ("words", "Against that target's fp32"), ("rec", "Recommended")])
    rep = Report.from_dict(report)
    sections = []
    for target in report["hardware"]:
        title = html.escape(f"{target.get('name')}: {target.get('cpu') or '?'}")
        if target.get("status") != "ok":
            sections.append(f"<h2>{title}</h2><p class='rec'>{html.escape(str(target.get('error') or target.get('status')))}</p>")
            continue
        body = export_html(rep.for_hardware(target["id"]).to_dict(), _plotlyjs=False)
        inner = re.search(r"<body>(.*)</body>", body, re.S).group(1).replace("<h1>", "<h2>").replace("</h1>", "</h2>")
        sections.append(f"<section><h2>{title}</h2>{inner}</section>")
    title = f"Quantization Lab — {report.get('model', '')} ({report.get('task', '')}) across {len(report['hardware'])} hardware targets"
    return _html_page(title, f'<div class="chart">{head}</div>\n{table}\n' + "".join(sections),
                      "Exported from Quantization Lab. Each target built and measured its own variants; timings do not transfer between machines.")
