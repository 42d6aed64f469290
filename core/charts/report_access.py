"""Reading a saved report (a dict, as loaded from JSON): its measured results, quality axis, speed cells, the point a
headline latency is read at, each variant against fp32, the Pareto front, and a hardware target's name.

Pure functions over the report dict; the pages, the charts (core/charts/) and the HTML export all read a report
through these, so a number means the same thing on every page. Nothing here needs plotly, torch or Streamlit.
"""

from __future__ import annotations

import math

from ..reporting.compare import compare_to_reference
from ..reporting.results import REFERENCE
from ..scenarios import scenario_of
from ..tasks import EMBEDDING, find_task


def is_reference(variant: str) -> bool:
    return str(variant) == REFERENCE


def ok_results(report: dict) -> list[dict]:
    """Results that have measurements (a variant that failed carries an error and no numbers)."""
    return [r for r in report.get("results") or [] if not r.get("error")]


def quality_spec(report: dict) -> tuple[str, str, bool, bool]:
    """(metric key, axis title, higher is better, percent) for the report's task."""
    task = find_task(report.get("task"), default=EMBEDDING)   # the quality axis the task declares (an unknown task: embedding's)
    key, title, higher, pct = task.primary, task.axis.title, task.higher_is_better, task.axis.percent
    if pct:
        values = [quality_value(r, key) for r in ok_results(report)]
        if any(v is not None and v > 1.0 for v in values):  # already in percent
            pct = False
            title = title.replace("%, ", "")
    return key, title, higher, pct


def quality_value(result: dict, key: str) -> float | None:
    value = (result.get("quality") or {}).get(key)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def shown_quality(report: dict, result: dict) -> float | None:
    key, _, _, pct = quality_spec(report)
    value = quality_value(result, key)
    return None if value is None else (value * 100 if pct else value)


def is_generation(report: dict) -> bool:
    """A generation run (causal LMs): speed is decode time per token, by prompt length, instead of one forward pass."""
    return scenario_of(report).sweep == "prompt_lengths"


def latency_points(result: dict) -> list[dict]:
    """The result's speed cells: its latency cells, or in a generation run its generation cells read as
    (batch size, prompt length) -> decode ms per token (p50, p90), so every speed chart works for both."""
    if not result.get("latency") and result.get("generation"):
        return [{"batch_size": g["batch_size"], "seq_len": g["prompt_len"], "p50_ms": g.get("decode_ms_per_token_p50"),
                 "p90_ms": g.get("decode_ms_per_token_p90"), "out_wrong": g.get("out_wrong")}
                for g in result["generation"] if g.get("decode_ms_per_token_p50") is not None]
    return [p for p in result.get("latency") or [] if p.get("p50_ms") is not None]


def batch_sizes(report: dict) -> list[int]:
    return sorted({int(p["batch_size"]) for r in ok_results(report) for p in latency_points(r)})


def seq_lengths(report: dict) -> list[int]:
    return sorted({int(p["seq_len"]) for r in ok_results(report) for p in latency_points(r)})


def default_point(report: dict) -> tuple[int | None, int | None]:
    """The (batch size, sequence length) a headline latency is read at: the recommended batch size (or 1, or the
    smallest measured) and ``None`` = the geometric mean over the sequence-length sweep (as the recommendation does)."""
    bs = batch_sizes(report)
    rec = (report.get("recommended") or {}).get("batch_size") or (report.get("settings") or {}).get("recommend_batch_size")
    batch = rec if rec in bs else (1 if 1 in bs else (bs[0] if bs else None))
    return batch, None


def latency_at(result: dict, batch_size: int | None, seq_len: int | None, field: str = "p50_ms") -> float | None:
    """A latency statistic at one cell; with ``seq_len=None`` the geometric mean over the measured lengths at that batch."""
    values = []
    for p in latency_points(result):
        if int(p["batch_size"]) != batch_size or (seq_len is not None and int(p["seq_len"]) != seq_len):
            continue
        value = p.get(field)
        if value is not None and float(value) > 0:
            values.append(float(value))
    if not values:
        return None
    if seq_len is not None:
        return values[0]
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def pareto_front(points: list[tuple[str, float, float]], higher_is_better: bool = True) -> list[str]:
    """Names on the quality/latency Pareto front: no other point is at least as fast and at least as good
    while strictly better in one. ``points`` are (name, latency, quality). Returned sorted by latency."""
    front = []
    for name, lat, q in points:
        dominated = False
        for other, lat2, q2 in points:
            if other == name:
                continue
            better_q = q2 >= q if higher_is_better else q2 <= q
            strictly = lat2 < lat or (q2 > q if higher_is_better else q2 < q)
            if lat2 <= lat and better_q and strictly:
                dominated = True
                break
        if not dominated:
            front.append((lat, name))
    return [name for _, name in sorted(front)]


def reference_quality(report: dict) -> dict:
    """fp32's quality: its own result when measured, else the report's ``reference`` block (quality-only fp32 run)."""
    ref = next((r for r in ok_results(report) if is_reference(r["variant"])), None)
    return dict((ref or {}).get("quality") or (report.get("reference") or {}).get("quality") or {})


def generation_cells(result: dict, batch_size: int | None) -> list[dict]:
    return sorted((g for g in result.get("generation") or [] if batch_size is None or int(g["batch_size"]) == batch_size),
                  key=lambda g: int(g["prompt_len"]))


def reference_rows(report: dict, batch_size: int | None = None) -> list[dict]:
    """Each variant's change against fp32 in numbers and words ("3.1x faster, 4.0x smaller, -0.4 pt accuracy"),
    from ``core.report.compare_to_reference`` (speed = geometric mean of p50 over the length sweep at the batch
    size), plus the variant's size and headline quality."""
    key, _, _, pct = quality_spec(report)
    by_name = {r["variant"]: r for r in report.get("results") or []}
    rows = compare_to_reference(report, batch_size)
    for row in rows:
        r = by_name.get(row["variant"], {})
        q = quality_value(r, key)
        row["quality"] = (q * 100 if pct else q) if q is not None else None
        row["size_mb"] = r["size_bytes"] / 2**20 if r.get("size_bytes") else None
    return rows


def target_label(target: dict) -> str:
    """'edge-1 · AMD EPYC · avx2' : how a target is named on charts and selectors."""
    isa = ([f for f in target.get("isa") or [] if f in ("avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "asimddot")]
           or [f for f in target.get("isa") or []][:1])
    return " · ".join(p for p in (str(target.get("name") or target.get("id")), str(target.get("cpu") or ""), " ".join(isa)) if p)
