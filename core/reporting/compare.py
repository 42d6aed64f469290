"""Each variant against fp32: speed-up, size ratio and the change of the task's primary metric, in numbers and in
words ("3.1x faster, 4.0x smaller, -0.4 pt accuracy"); across hardware targets, per target against its own fp32."""

from __future__ import annotations

import math

from ..tasks import get_task
from .results import REFERENCE, Report, as_report


# -- comparison with fp32 -------------------------------------------------------------------------
def reference_quality(rep: Report) -> dict:
    ref = rep.result(REFERENCE)
    return (ref.quality if ref and not ref.error else None) or rep.reference.get("quality") or {}


def quality_delta(task: str, quality: dict, ref_quality: dict) -> tuple[float | None, str]:
    """(delta, unit) of the task's primary metric vs fp32: cosine difference, accuracy points, perplexity percent."""
    return get_task(task).quality_delta(quality, ref_quality)


def _ratio_words(ratio: float, more: str, less: str) -> str:
    if ratio is None or not math.isfinite(ratio):
        return ""
    if 0.95 <= ratio <= 1.05:
        return f"same {'speed' if more == 'faster' else 'size'} as fp32"
    return f"{ratio:.1f}x {more}" if ratio > 1 else f"{1 / ratio:.1f}x {less}"


def delta_words(task: str, delta: float | None) -> str:
    return get_task(task).delta_words(delta)


def compare_to_reference(report, batch_size: int | None = None) -> list[dict]:
    """Per variant: speed-up (fp32 p50 / variant p50 at ``batch_size``), size ratio (fp32 size / variant size),
    quality delta of the task's primary metric, and the three in words ("3.1x faster, 4.0x smaller, -0.4 pt accuracy")."""
    rep = as_report(report)
    bs = (batch_size or (rep.recommended or {}).get("batch_size") or rep.settings.get("recommend_batch_size")
          or (rep.batch_sizes[0] if rep.batch_sizes else None))
    ref = rep.result(REFERENCE)
    ref_ok = ref is not None and not ref.error
    ref_p50 = ref.speed_at(bs) if ref_ok else None
    ref_size = ref.size_bytes if ref_ok else rep.reference.get("size_bytes")
    ref_q = reference_quality(rep)
    rows = []
    for r in rep.results:
        p50 = r.speed_at(bs) if not r.error else None
        speedup = ref_p50 / p50 if ref_p50 and p50 else None
        size_ratio = ref_size / r.size_bytes if ref_size and r.size_bytes else None
        delta, unit = quality_delta(rep.task, r.quality, ref_q) if not r.error else (None, "")
        words = [] if not r.error else [f"failed: {r.error}"]
        if r.variant != REFERENCE and not r.error:
            words = [w for w in (_ratio_words(speedup, "faster", "slower"), _ratio_words(size_ratio, "smaller", "larger"), delta_words(rep.task, delta)) if w]
        rows.append({"variant": r.variant, "batch_size": bs, "p50_ms": p50, "speedup": speedup, "size_ratio": size_ratio,
                     "quality_delta": delta, "quality_unit": unit, "words": ", ".join(words) if words else ("reference" if r.variant == REFERENCE else ""),
                     "kernels": kernel_words(r.kernels)})
    return rows


def kernel_words(line: str | None) -> str | None:
    """A result's kernel line (core.measure.kernels) for a table cell: without its prefix and the runtime's own names,
    e.g. '35 of 35 on avx512_amx (int8)'; None for a report from before kernels were read."""
    if not line:
        return None
    text = line.split(": ", 1)[1] if ": " in line else line
    return text.split(" [", 1)[0]


# -- across hardware targets ----------------------------------------------------------------------
def cross_hardware_rows(report, batch_size: int | None = None) -> list[dict]:
    """One row per target x variant: speed-up against that target's own fp32, size, quality change, and whether it is
    that target's recommendation; a lost or failed target gives one row with its reason."""
    rep = as_report(report)
    rows = []
    for target in rep.hardware:
        base = {"hardware": target["id"], "name": target.get("name"), "cpu": target.get("cpu"), "isa": " ".join(target.get("isa") or [])}
        if target.get("status") != "ok":
            rows.append(dict(base, variant=None, status=target.get("status"), words=target.get("error")))
            continue
        sub = rep.for_hardware(target["id"])
        rec = (sub.recommended or {}).get("variant")
        for row in compare_to_reference(sub, batch_size):
            rows.append(dict(base, **row, status="ok", recommended=row["variant"] == rec))
    return rows
