"""The evaluation report: dataclasses with a JSON round trip, a flat CSV export, the CLI text table, and
``compare_to_reference`` (speed-up, size ratio and quality change of each variant vs fp32, in words).

Summary speed of a variant at a batch size = the geometric mean of its end-to-end p50 over the seq-length sweep
(each seq length counts equally in relative terms; one long sequence does not drown the short ones).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace

from .errors import QlabError
from .tasks import get_task
from .tasks.base import fmt as _fmt

SCHEMA_VERSION = 1
REFERENCE = "fp32"


class ReportError(QlabError):
    """A file that is not a Quantization Lab report (or of an unknown schema)."""


@dataclass
class LatencyCell:
    batch_size: int
    seq_len: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    throughput_per_s: float
    forward_p50_ms: float
    forward_mean_ms: float | None = None
    iterations: int | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyCell":
        return cls(**_known(cls, d))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GenerationCell:
    """Greedy generation at one batch size and prompt length (core.generation): time to the first token (prompt
    tokenized and prefilled, first token chosen), then milliseconds per further token, and generated tokens per second
    over the whole generation (first token included)."""

    batch_size: int
    prompt_len: int
    new_tokens: int
    ttft_ms: float
    decode_ms_per_token_p50: float
    decode_ms_per_token_p90: float
    tokens_per_s: float
    kv_cache: bool
    ttft_p90_ms: float | None = None
    runs: int | None = None
    sample: str | None = None       # the first prompt's continuation, as text

    @classmethod
    def from_dict(cls, d: dict) -> "GenerationCell":
        return cls(**_known(cls, d))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VariantResult:
    variant: str
    size_bytes: int = 0
    param_bytes: int = 0
    build_s: float | None = None
    cache_hit: bool = False
    load_s: float | None = None
    peak_rss_bytes: int | None = None              # the measuring worker's peak resident memory
    quality: dict = field(default_factory=dict)
    latency: list[LatencyCell] = field(default_factory=list)
    dataset_throughput: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    is_reference: bool = False
    baseline_rss_bytes: int | None = None          # the worker's memory with libraries imported, before loading the variant
    hardware: str | None = None                    # the target it ran on, in a comparison across hardware targets
    generation: list[GenerationCell] = field(default_factory=list)   # the generation scenario's cells (causal LMs)
    generation_agreement: float | None = None      # share of greedy tokens equal to fp32's for the same prompts

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VariantResult":
        d = _known(cls, d)
        d["latency"] = [LatencyCell.from_dict(c) for c in d.get("latency") or []]
        d["generation"] = [GenerationCell.from_dict(c) for c in d.get("generation") or []]
        return cls(**d)

    # -- derived ---------------------------------------------------------------------------------
    def cell(self, batch_size: int, seq_len: int) -> LatencyCell | None:
        return next((c for c in self.latency if c.batch_size == batch_size and c.seq_len == seq_len), None)

    def p50_at(self, batch_size: int) -> float | None:
        """Geometric mean of end-to-end p50 (ms) over the seq-length sweep at ``batch_size``."""
        return geomean(c.p50_ms for c in self.latency if c.batch_size == batch_size)

    def decode_ms_at(self, batch_size: int) -> float | None:
        """Geometric mean of the decode p50 (ms per token) over the prompt lengths at ``batch_size``."""
        return geomean(c.decode_ms_per_token_p50 for c in self.generation if c.batch_size == batch_size)

    def speed_at(self, batch_size: int) -> float | None:
        """The run's speed figure (lower is faster): the latency p50, or in a generation run the decode ms per token."""
        return self.p50_at(batch_size) if self.latency or not self.generation else self.decode_ms_at(batch_size)

    def speed_p90_at(self, batch_size: int) -> float | None:
        if self.latency or not self.generation:
            return geomean(c.p90_ms for c in self.latency if c.batch_size == batch_size)
        return geomean(c.decode_ms_per_token_p90 for c in self.generation if c.batch_size == batch_size)


def geomean(values) -> float | None:
    values = [float(v) for v in values if v is not None and v > 0]
    return float(math.exp(sum(math.log(v) for v in values) / len(values))) if values else None


def speed_unit(results) -> str:
    """'ms/token' when the results are a generation run (decode speed), else 'ms' (one forward pass, end to end)."""
    rs = [r for r in results if not getattr(r, "error", None)]
    return "ms/token" if rs and all(r.generation and not r.latency for r in rs) else "ms"


@dataclass
class Report:
    task: str
    model: str
    environment: dict
    results: list[VariantResult]
    recommended: dict | None = None
    budgets: dict = field(default_factory=dict)
    created: str = ""
    run_id: str = ""
    data: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)   # fp32's quality (always computed, even when fp32 is not a requested variant)
    schema: int = SCHEMA_VERSION
    hardware: list = field(default_factory=list)    # across hardware targets: each target's probe, status, environment, reference
    recommended_by_hardware: dict = field(default_factory=dict)   # target id -> the same shape as ``recommended``

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        if not isinstance(d, dict) or not {"task", "model", "results"} <= set(d):
            raise ReportError("Not a Quantization Lab report: it has no task, model and results.")
        if int(d.get("schema", SCHEMA_VERSION)) > SCHEMA_VERSION:
            raise ReportError(f"Report schema {d.get('schema')} is newer than this lab understands ({SCHEMA_VERSION}); update the lab.")
        d = _known(cls, d)
        d["results"] = [VariantResult.from_dict(r) for r in d["results"]]
        d.setdefault("environment", {})
        return cls(**d)

    def result(self, variant: str) -> VariantResult | None:
        return next((r for r in self.results if r.variant == variant), None)

    @property
    def target_ids(self) -> list[str]:
        """The hardware targets of a cross-hardware report, in order ([] for a one-machine report)."""
        return [t["id"] for t in self.hardware if isinstance(t, dict) and t.get("id")]

    def for_hardware(self, target_id: str) -> "Report":
        """This report as if only ``target_id`` had been measured: its rows, machine, reference and recommendation."""
        target = next((t for t in self.hardware if t.get("id") == target_id), None)
        if target is None:
            raise ReportError(f"This report has no hardware target '{target_id}'.")
        return replace(self, results=[r for r in self.results if r.hardware == target_id], environment=target.get("environment") or {},
                       reference=target.get("reference") or {}, recommended=self.recommended_by_hardware.get(target_id),
                       hardware=[], recommended_by_hardware={})

    @property
    def batch_sizes(self) -> list[int]:
        return self.settings.get("batch_sizes") or sorted({c.batch_size for r in self.results for c in r.latency})

    @property
    def seq_lengths(self) -> list[int]:
        return self.settings.get("seq_lengths") or sorted({c.seq_len for r in self.results for c in r.latency})


def _known(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in dict(d).items() if k in names}


def as_report(report) -> Report:
    return report if isinstance(report, Report) else Report.from_dict(report)


# -- JSON / CSV ---------------------------------------------------------------------------------
def finite(obj):
    """The same structure with NaN/inf floats replaced by None (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def report_to_json(report, indent: int = 2) -> str:
    d = report.to_dict() if isinstance(report, Report) else report
    return json.dumps(finite(d), indent=indent, default=_json_default, allow_nan=False)


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def report_from_json(text: str | bytes) -> Report:
    try:
        d = json.loads(text)
    except ValueError as err:
        raise ReportError(f"Not a Quantization Lab report: invalid JSON ({err.__class__.__name__}).") from None
    return Report.from_dict(d)


CSV_COLUMNS = ["run_id", "task", "model", "variant", "batch_size", "seq_len", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms",
               "throughput_per_s", "forward_p50_ms", "size_bytes", "param_bytes", "peak_rss_bytes", "load_s", "build_s", "cache_hit", "hardware"]


GENERATION_COLUMNS = ["prompt_len", "new_tokens", "ttft_ms", "decode_ms_per_token_p50", "decode_ms_per_token_p90", "tokens_per_s", "kv_cache",
                      "generation_agreement"]


def report_to_csv(report) -> str:
    """One row per variant x batch size x seq length, with the variant's quality metrics repeated on each row."""
    rep = as_report(report)
    qkeys = sorted({k for r in rep.results for k, v in r.quality.items() if isinstance(v, (int, float)) or v is None})
    out = io.StringIO()
    generation = GENERATION_COLUMNS if any(r.generation for r in rep.results) else []
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS + generation + qkeys + ["error"], extrasaction="ignore")
    writer.writeheader()
    for r in rep.results:
        base = {"run_id": rep.run_id, "task": rep.task, "model": rep.model, "hardware": r.hardware or "", "variant": r.variant, "size_bytes": r.size_bytes,
                "param_bytes": r.param_bytes, "peak_rss_bytes": r.peak_rss_bytes, "load_s": r.load_s, "build_s": r.build_s,
                "cache_hit": r.cache_hit, "error": r.error or "", **{k: r.quality.get(k) for k in qkeys}}
        for c in r.latency or ([] if r.generation else [None]):
            row = dict(base)
            if c is not None:
                row.update({k: getattr(c, k)
                            for k in ("batch_size", "seq_len", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput_per_s", "forward_p50_ms")})
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
        for g in r.generation:   # the generation scenario: one row per batch size x prompt length
            row = dict(base, batch_size=g.batch_size, generation_agreement=r.generation_agreement,
                       **{k: getattr(g, k) for k in GENERATION_COLUMNS if k not in ("generation_agreement", "batch_size")})
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return out.getvalue()


def csv_cell(value):
    """No spreadsheet formula from a CSV cell: text starting with = + - @ (or tab/CR) gets a leading apostrophe;
    numbers stay numbers (a negative number is not text)."""
    from .hosting import csv_cell as neutralise

    return neutralise(value)


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
                     "quality_delta": delta, "quality_unit": unit, "words": ", ".join(words) if words else ("reference" if r.variant == REFERENCE else "")})
    return rows


# -- across hardware targets ----------------------------------------------------------------------
def _target_heading(target: dict) -> str:
    isa = " ".join(target.get("isa") or []) or "no vector int8/bf16 flags"
    return f"== {target.get('name')} ({target.get('id')}): {target.get('cpu') or '?'}, {target.get('cores') or '?'} cores, {isa} =="


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


# -- whole-dataset throughput: sorted by length against data order ---------------------------------
def _rate(mode: dict | None, key: str = "texts_per_s") -> float | None:
    value = (mode or {}).get(key)
    if value is None and key == "texts_per_s":
        value = (mode or {}).get("throughput_per_s")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def throughput_summary(dt: dict | None) -> dict | None:
    """One result's ``dataset_throughput`` read for people (None when it was not measured).

    ``gain`` = sorted median / unsorted median; ``within_noise`` = the two min-max ranges overlap (None for reports
    from before repeated passes, which have no spread); ``padding`` = (sorted, unsorted) padding fractions or None;
    ``words``: at batch 1 that sorting cannot matter, else "no difference within noise" or the gain beside the padding.
    """
    dt = dt if isinstance(dt, dict) else {}
    s, u = (dt.get(m) if isinstance(dt.get(m), dict) else {} for m in ("sorted", "unsorted"))
    s_med, u_med = _rate(s), _rate(u)
    if s_med is None or u_med is None:
        return None
    ranges = [(_rate(m, "texts_per_s_min"), _rate(m, "texts_per_s_max")) for m in (s, u)]
    spread = all(lo is not None and hi is not None for lo, hi in ranges)
    within = (ranges[0][0] <= ranges[1][1] and ranges[1][0] <= ranges[0][1]) if spread else None
    gain = s_med / u_med if u_med > 0 else None
    pads = (s.get("padding_fraction"), u.get("padding_fraction"))
    padding = pads if all(isinstance(p, (int, float)) for p in pads) else None
    batch = dt.get("batch_size")
    pad_words = f"padding {padding[1]:.0%} of tokens unsorted -> {padding[0]:.0%} sorted" if padding else ""
    gain_words = (f"sorted {gain:.2f}x faster" if gain >= 1 else f"sorted {1 / gain:.2f}x slower") if gain else ""
    if batch == 1:
        words = "batch 1: no padding, so sorting cannot matter here" + (
            " (no difference within noise)" if within else f" ({gain_words}: noise)" if gain_words else "")
    elif within:
        words = "no difference within noise" + (f" ({gain_words}; {pad_words})" if pad_words else f" ({gain_words})")
    else:
        words = "; ".join(w for w in (gain_words, pad_words) if w) + ("" if spread else " (one pass per mode: no spread measured)")
    return {"batch_size": batch, "sorted": s_med, "unsorted": u_med, "gain": gain, "spread": spread, "within_noise": within,
            "padding": padding, "passes": (s.get("passes"), u.get("passes")), "words": words}


def _range_text(mode: dict | None) -> str:
    med, lo, hi = _rate(mode), _rate(mode, "texts_per_s_min"), _rate(mode, "texts_per_s_max")
    if med is None:
        return "-"
    return f"{med:.0f}" + (f" [{lo:.0f}-{hi:.0f}]" if lo is not None and hi is not None else "")


def throughput_rows(report) -> list[dict]:
    """Per measured variant: batch size, sorted / unsorted median texts/s with their ranges as text ("412 [398-420]"),
    passes, padding fractions, the gain and the verdict in words (see throughput_summary). Old reports give what they have."""
    rep = as_report(report)
    rows = []
    for r in rep.results:
        summary = None if r.error else throughput_summary(r.dataset_throughput)
        if summary is None:
            continue
        dt = r.dataset_throughput   # a dict: throughput_summary returned None otherwise
        rows.append({"variant": r.variant, "batch_size": summary["batch_size"], "texts": (dt.get("sorted") or {}).get("texts"),
                     "sorted_texts_per_s": summary["sorted"], "unsorted_texts_per_s": summary["unsorted"],
                     "sorted_range": _range_text(dt.get("sorted")), "unsorted_range": _range_text(dt.get("unsorted")),
                     "passes": summary["passes"][0], "padding_sorted": (summary["padding"] or (None, None))[0],
                     "padding_unsorted": (summary["padding"] or (None, None))[1], "gain": summary["gain"],
                     "within_noise": summary["within_noise"], "words": summary["words"]})
    return rows


def throughput_heading(rows: list[dict]) -> str:
    """"Whole dataset (120 texts) at batch 32, texts/s sorted by length / in data order, median [min-max] over 5 alternated passes per mode"."""
    if not rows:
        return ""
    texts, passes = rows[0].get("texts"), sorted({r["passes"] for r in rows if r.get("passes")})
    return (f"Whole dataset{f' ({texts} texts)' if texts else ''} at batch {rows[0].get('batch_size', '?')}, texts/s sorted by length / in data order"
            + (f", median [min-max] over {'/'.join(map(str, passes))} alternated passes per mode" if passes else ""))


def throughput_lines(report, batch_size: int | None = None) -> list[str]:
    """The CLI's whole-dataset throughput lines: per variant, median [min-max] texts/s sorted / unsorted, padding, verdict."""
    rows = throughput_rows(report)
    if not rows:
        return []
    return [throughput_heading(rows) + ":"] + [f"  {r['variant']}: {r['sorted_range']} / {r['unsorted_range']}; {r['words']}." for r in rows]


# -- text table -----------------------------------------------------------------------------------
def _render(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def format_table(report, batch_size: int | None = None) -> str:
    """The table the CLI prints: variant, size MB, size ratio vs fp32, p50 ms per batch size (geo-mean over the seq
    sweep), speed-up vs fp32, quality metric, delta vs fp32, cache hit; then the recommendation and notes."""
    rep = as_report(report)
    if rep.hardware:
        return "\n\n".join(_target_heading(t) + "\n"
                             + (format_table(rep.for_hardware(t["id"]), batch_size) if t.get("status") == "ok" else f"  {t.get('error')}")
                             for t in rep.hardware)
    comparison = {row["variant"]: row for row in compare_to_reference(rep, batch_size)}
    bs_rec = next(iter(comparison.values()))["batch_size"] if comparison else batch_size
    task = get_task(rep.task)
    metric = task.primary
    seqs = ",".join(str(s) for s in rep.seq_lengths)
    unit = speed_unit(rep.results)
    headers = (["variant", "size MB", "x smaller"] + [f"p50 {unit} b={b}" for b in rep.batch_sizes]
               + [f"x faster b={bs_rec}", task.primary_label, "delta", "cached"])
    extra = [c for c in task.table_columns if not c.only_if_measured or any(c.key in r.quality for r in rep.results)]
    headers[-1:-1] = [c.header for c in extra]
    rows = []
    for r in rep.results:
        c = comparison[r.variant]
        if r.error:
            rows.append([r.variant, "-", "-"] + ["-"] * len(rep.batch_sizes) + ["-", "failed", "-"] + ["-"] * len(extra) + ["-"])
            continue
        cells = [r.variant + (" *" if rep.recommended and rep.recommended.get("variant") == r.variant else ""),
                 _fmt(r.size_bytes / 1e6 if r.size_bytes else None, ".1f"),
                 _fmt(c["size_ratio"], ".2f") + ("x" if c["size_ratio"] else "")]
        cells += [_fmt(r.speed_at(b), ".2f") for b in rep.batch_sizes]
        cells += [_fmt(c["speedup"], ".2f") + ("x" if c["speedup"] else ""), task.metric_cell(r.quality.get(metric)), task.delta_cell(c["quality_delta"])]
        cells += [col.cell(r.quality.get(col.key)) for col in extra]
        cells.append("yes" if r.cache_hit else "no")
        rows.append(cells)
    right = set(range(1, len(headers) - 1))
    load = (rep.settings.get("load_average") or {}).get("start")
    busy = (f" | load avg {load:.1f} at start" + (" (busy machine: timings are noisy)" if load > (rep.environment.get("cores") or 1) * 0.75 else "")
            if load is not None else "")
    out = [f"{rep.task} | model {rep.model} | data {rep.data.get('name', '?')} ({rep.data.get('rows', '?')} rows) | "
           f"{rep.environment.get('cpu', '?')}, {rep.environment.get('threads', '?')} threads, {rep.environment.get('device', 'cpu')}{busy}", "",
           _render(headers, rows, right), "",
           ]
    if unit == "ms":
        out.append(f"p50 = median end-to-end latency (tokenization included), geometric mean over seq lengths {seqs}; size = artifact on disk.")
    out += generation_lines(rep)
    out += throughput_lines(rep, bs_rec)
    mem = [(r.variant, r.peak_rss_bytes, r.baseline_rss_bytes) for r in rep.results if not r.error and r.peak_rss_bytes]
    if mem:
        out.append("Peak memory of each worker (libraries alone): " + ", ".join(
            f"{v} {p / 1e6:.0f} MB" + (f" ({b / 1e6:.0f} MB)" if b else "") for v, p, b in mem) + ".")
    note = task.table_note(reference_quality(rep))
    if note:
        out.append(note)
    rec = rep.recommended
    out.append("")
    out.append(f"Recommended: {rec['variant']} - {rec['reason']}" if rec
               else "Recommended: none - " + (rep.settings.get("no_recommendation_reason") or "no variant stays within the quality budget."))
    notes = [(r.variant, n) for r in rep.results for n in ([f"FAILED: {r.error}"] if r.error else []) + r.notes]
    if notes:
        out += ["", "Notes:"]
        out += [f"  {v}: {n}" for v, n in notes]
    return "\n".join(out)


def generation_lines(rep: Report) -> list[str]:
    """The generation scenario's table: per variant, batch size and prompt length, TTFT, decode ms/token, tokens/s."""
    rows = []
    for r in rep.results:
        for c in r.generation:
            rows.append([r.variant, str(c.batch_size), str(c.prompt_len), str(c.new_tokens), _fmt(c.ttft_ms, ".1f"),
                         _fmt(c.decode_ms_per_token_p50, ".2f"), _fmt(c.decode_ms_per_token_p90, ".2f"), _fmt(c.tokens_per_s, ".1f"),
                         "yes" if c.kv_cache else "NO", _fmt(r.generation_agreement * 100 if r.generation_agreement is not None else None, ".0f") + "%"])
    if not rows:
        return []
    headers = ["variant", "batch", "prompt", "new", "TTFT ms", "ms/token p50", "ms/token p90", "tokens/s", "KV cache", "agree"]
    new = rep.settings.get("new_tokens")
    return ["", f"Generation (greedy{f', {new} new tokens' if new else ''}): TTFT = prompt tokenized and prefilled, first token chosen; "
                "ms/token = each further token; tokens/s = generated tokens / whole generation time; agree = greedy tokens equal to fp32's.",
            _render(headers, rows, set(range(1, len(headers))))]
