"""A variant's result and the report, each field declared once (see core/reporting/fields.py), with their JSON
round trip.

Summary speed of a variant at a batch size = the geometric mean of its end-to-end p50 over the seq-length sweep
(each seq length counts equally in relative terms; one long sequence does not drown the short ones).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

from ..errors import QlabError
from ..tasks import REGISTRY, TASKS, all_tasks
from .cells import GenerationCell, LatencyCell
from .fields import (
    BOOL_OR_NULL,
    CSV_GENERATION,
    CSV_TAIL,
    EARLIEST,
    LATEST,
    MAX_CELLS,
    MAX_NAME,
    MAX_NOTES,
    MAX_RESULTS,
    MAX_TARGETS,
    MAX_TEXT,
    VARIANT,
    array,
    integer,
    known,
    num,
    obj,
    plain_fields,
    schema_of,
    spec,
    text,
)
from .throughput import SCHEMA as THROUGHPUT_SCHEMA
from .throughput import DatasetThroughput

# The scenarios a saved report may name (core/scenarios measures them and sits above this module, so it is not
# imported here; tests/test_scenarios.py checks that every registered scenario is listed).
SCENARIO_NAMES = ("latency", "generate")

SCHEMA_VERSION = 1
REFERENCE = "fp32"


class ReportError(QlabError):
    """A file that is not a Quantization Lab report (or of an unknown schema)."""


def quality_schema(task: str | None, strict: bool = True) -> dict:
    """Known metrics of the task with their ranges (declared by the task, core/tasks); a run saved here may carry
    other numbers (a newer engine's)."""
    names = REGISTRY[task].metrics if task else {k: v for t in all_tasks() for k, v in t.metrics.items()}
    return {"type": ["object", "null"], "maxProperties": 32, "properties": {k: num(lo, hi) for k, (lo, hi) in names.items()},
            "additionalProperties": False if strict else num(-1e15, 1e15)}


@dataclass
class VariantResult:
    variant: str = spec(VARIANT, csv=3, required=True, doc="the variant in recipe[:key=value] form")
    size_bytes: int = spec(integer(0, 10**15, null=True), unit="bytes", csv=13, default=0, doc="the artifact on disk")
    param_bytes: int = spec(integer(0, 10**15, null=True), unit="bytes", csv=14, default=0, doc="the weights in memory")
    build_s: float | None = spec(num(0, 1e7), unit="s", csv=17, default=None, doc="time to build the variant")
    cache_hit: bool = spec(BOOL_OR_NULL, csv=18, default=False, doc="taken from the model store instead of built")
    load_s: float | None = spec(num(0, 1e7), unit="s", csv=16, default=None, doc="time to load it from the store")
    peak_rss_bytes: int | None = spec(integer(0, 10**15, null=True), unit="bytes", csv=15, default=None,
                                      doc="the measuring worker's peak resident memory")
    quality: dict = spec(quality_schema, default_factory=dict, doc="the task's quality metrics (CSV: one column each)")
    latency: list[LatencyCell] = spec(array(schema_of(LatencyCell), MAX_CELLS, null=True), default_factory=list, doc="the latency sweep")
    dataset_throughput: DatasetThroughput | None = spec(THROUGHPUT_SCHEMA, default_factory=DatasetThroughput,
                                                        doc="whole-dataset throughput, sorted against unsorted")
    notes: list[str] = spec(array(text(MAX_TEXT), MAX_NOTES, null=True), default_factory=list, doc="what the build and run noticed")
    error: str | None = spec(text(MAX_TEXT, null=True), csv=CSV_TAIL, default=None, doc="why the variant failed")
    is_reference: bool = spec(BOOL_OR_NULL, default=False, doc="the fp32 reference")
    baseline_rss_bytes: int | None = spec(integer(0, 10**15, null=True), unit="bytes", default=None,
                                          doc="the worker's memory with libraries imported, before loading the variant")
    hardware: str | None = spec(text(64, null=True), csv=19, default=None, doc="the target it ran on, in a comparison across hardware targets")
    generation: list[GenerationCell] = spec(array(schema_of(GenerationCell), MAX_CELLS, null=True), default_factory=list,
                                            doc="the generation scenario's cells (causal LMs)")
    generation_agreement: float | None = spec(num(0, 1), csv=CSV_GENERATION + 7, default=None,
                                              doc="share of greedy tokens equal to fp32's for the same prompts")
    kernels: str | None = spec(text(MAX_TEXT, null=True), csv=20, default=None,
                               doc="the kernels its matmuls ran with, as its runtime reports them (read after its timing)")

    def __post_init__(self):
        if self.dataset_throughput is not None:   # given as the engine's dict: read by its one parser
            self.dataset_throughput = DatasetThroughput.from_dict(self.dataset_throughput)

    def to_dict(self) -> dict:
        return plain_fields(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VariantResult":
        d = known(cls, d)
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


# -- the report's nested entries (dicts in the report; their schema here, beside the field) -----------------
CREATED = {"anyOf": [num(EARLIEST, LATEST, null=False), {"type": "string", "maxLength": 40,
                                                        "pattern": r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?$"}]}
ENVIRONMENT = obj({
    "cpu": text(), "arch": text(32), "cores": integer(0, 100_000, null=True), "threads": integer(0, 100_000, null=True),
    "device": text(32, null=True), "quantized_engine": text(32, null=True), "python": text(32, null=True),
    "instruction_sets": {"type": "array", "maxItems": 64, "items": text(32)},
    "versions": {"type": "object", "maxProperties": 64, "additionalProperties": text(64)},
}, extra=True, null=True)
RECOMMENDED = obj({"variant": VARIANT, "reason": text(MAX_TEXT), "batch_size": integer(1, 100_000, null=True),
                   "p50_ms": num(0, 1e9), "speedup": num(0, 1e9)}, extra=True, null=True)
DATA = obj({"name": text(), "rows": integer(0, 10**9, null=True), "texts": integer(0, 10**9, null=True),
            "columns": {"type": "array", "maxItems": 64, "items": text(64)}, "path": text(1000)}, extra=True, null=True)
SETTINGS = obj({"variants": {"type": "array", "maxItems": MAX_RESULTS + 1, "items": text(300)},
                "batch_sizes": {"type": "array", "maxItems": 64, "items": integer(1, 100_000)},
                "seq_lengths": {"type": "array", "maxItems": 64, "items": integer(1, 1_000_000)},
                "scenario": {"enum": list(SCENARIO_NAMES)},
                "prompt_lengths": {"type": "array", "maxItems": 64, "items": integer(1, 1_000_000)},
                "new_tokens": integer(1, 1_000_000),
                "protocol": {"type": ["object", "null"], "maxProperties": 16, "additionalProperties": num(0, 1e9)},
                "load_average": {"type": ["object", "null"], "maxProperties": 4, "additionalProperties": num(0, 1e6)}},
               extra=True, null=True)
TARGET_ID = {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"}


def reference_schema(task: str | None, strict: bool) -> dict:
    return obj({"variant": text(64), "quality": quality_schema(task, strict), "size_bytes": integer(0, 10**15, null=True),
                "measured": {"type": ["boolean", "null"]}}, null=True)


def target_schema(task: str | None, strict: bool) -> dict:
    """One hardware target of a cross-hardware report: what it is, whether it finished, its machine and reference."""
    return obj({
        "id": TARGET_ID, "name": text(), "node_id": text(64, null=True), "cpu": text(null=True), "arch": text(32, null=True),
        "cores": integer(0, 100_000, null=True), "isa": {"type": "array", "maxItems": 64, "items": text(32)}, "gpu": text(null=True),
        "status": {"enum": ["ok", "lost", "failed", "cancelled"]}, "error": text(MAX_TEXT, null=True), "elapsed_s": num(0, 1e9),
        "probe": obj({}, extra=True, null=True), "environment": obj({}, extra=True, null=True),
        "reference": reference_schema(task, strict),
    }, required=("id", "status"))


def _results_schema(task: str | None, strict: bool) -> dict:
    return {"type": "array", "minItems": 1, "maxItems": MAX_RESULTS, "items": schema_of(VariantResult, task=task, strict=strict, extra=not strict)}


def _budgets_schema(task: str | None, strict: bool) -> dict:
    return obj({b.key: num(*b.schema_range) for t in all_tasks() for b in t.all_budgets}, null=True)


@dataclass
class Report:
    task: str = spec(lambda task, strict: {"enum": list(TASKS)}, csv=1, required=True, doc="the task (core/tasks)")
    model: str = spec({"type": "string", "minLength": 1, "maxLength": MAX_NAME}, csv=2, required=True, doc="the model's name, hub id or folder")
    environment: dict = spec(ENVIRONMENT, doc="the machine and library versions")
    results: list[VariantResult] = spec(_results_schema, required=True, doc="one per variant (and hardware target)")
    recommended: dict | None = spec(RECOMMENDED, default=None, doc="the recommendation and its reason")
    budgets: dict = spec(_budgets_schema, default_factory=dict, doc="the quality budgets it was recommended within")
    created: str = spec(CREATED, default="", doc="when it was measured (ISO 8601)")
    run_id: str = spec({"type": "string", "maxLength": 64}, csv=0, default="", doc="the run's id (32 hex characters)")
    data: dict = spec(DATA, default_factory=dict, doc="the data set it was measured on")
    settings: dict = spec(SETTINGS, default_factory=dict, doc="what was asked for: variants, sweeps, protocol")
    reference: dict = spec(reference_schema, default_factory=dict, doc="fp32's quality (always computed, even when fp32 is not a requested variant)")
    schema: int = spec(integer(1, 1), default=SCHEMA_VERSION, doc="the report format's version")
    hardware: list = spec(lambda task, strict: {"type": ["array", "null"], "maxItems": MAX_TARGETS, "items": target_schema(task, strict)},
                          default_factory=list, doc="across hardware targets: each target's probe, status, environment, reference")
    recommended_by_hardware: dict = spec({"type": ["object", "null"], "maxProperties": MAX_TARGETS, "propertyNames": TARGET_ID,
                                          "additionalProperties": RECOMMENDED}, default_factory=dict,
                                         doc="target id -> the same shape as ``recommended``")
    recommended_by_batch: dict = spec({"type": ["object", "null"], "maxProperties": 64, "propertyNames": {"pattern": "^[0-9]{1,6}$"},
                                       "additionalProperties": RECOMMENDED}, default_factory=dict,
                                      doc="batch size -> the variant to ship at that batch size (the same shape as ``recommended``)")

    def to_dict(self) -> dict:
        return plain_fields(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        if not isinstance(d, dict) or not {"task", "model", "results"} <= set(d):
            raise ReportError("Not a Quantization Lab report: it has no task, model and results.")
        if int(d.get("schema", SCHEMA_VERSION)) > SCHEMA_VERSION:
            raise ReportError(f"Report schema {d.get('schema')} is newer than this lab understands ({SCHEMA_VERSION}); update the lab.")
        d = known(cls, d)
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


def as_report(report) -> Report:
    return report if isinstance(report, Report) else Report.from_dict(report)


# -- JSON -----------------------------------------------------------------------------------------
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
