"""The JSON Schema of a saved or imported report, checked with ``jsonschema`` (Draft 2020-12).

Types, ranges and lengths of every field the pages, charts and exports read; the known tasks; the known quality
metrics of each task and its budget's range (both declared by the task, core/tasks); variant names in the
recipe-spec form. Imports are checked strictly (no field this lab does not know, so nothing unchecked is ever saved
or shown); runs saved here are checked with the same rules but may carry extra top-level fields another version of
the lab added.

``check(data, strict=...)`` returns the first problem as one line ("results[3].latency[0].p50_ms: -1.0 is less
than the minimum of 0"), or None.
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache

from .tasks import REGISTRY, TASKS, all_tasks

MAX_RESULTS = 40            # variants in one report (the charts give each its own colour)
MAX_CELLS = 500             # latency cells per variant
MAX_NOTES = 50
MAX_TEXT = 2000             # a note, an error, a reason
MAX_NAME = 200              # a model, a data set, a CPU
EARLIEST, LATEST = 946684800.0, 4102444800.0   # 2000-01-01 .. 2100-01-01 (epoch seconds)

VARIANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}(:[a-z_][a-z0-9_]{0,31}=[A-Za-z0-9._-]{1,32}){0,8}$"
RUN_ID_PATTERN = r"^[0-9a-f]{32}$"


def _num(lo=0.0, hi=1e15, null=True) -> dict:
    return {"type": ["number", "null"] if null else "number", "minimum": lo, "maximum": hi}


def _int(lo=0, hi=10**15, null=False) -> dict:
    return {"type": ["integer", "null"] if null else "integer", "minimum": lo, "maximum": hi}


def _str(n=MAX_NAME, null=False) -> dict:
    return {"type": ["string", "null"] if null else "string", "maxLength": n}


SCALAR = {"anyOf": [_str(MAX_NAME), {"type": ["number", "boolean", "null"], "minimum": -1e15, "maximum": 1e15}]}
SHORT_LIST = {"type": "array", "maxItems": 64, "items": SCALAR}
INFO = {"anyOf": [SCALAR, SHORT_LIST, {"type": "object", "maxProperties": 64, "additionalProperties": {"anyOf": [SCALAR, SHORT_LIST]}}]}


def _quality(task: str | None, strict: bool = True) -> dict:
    """Known metrics of the task with their ranges; a run saved here may carry other numbers (a newer engine's)."""
    names = REGISTRY[task].metrics if task else {k: v for t in all_tasks() for k, v in t.metrics.items()}
    return {"type": ["object", "null"], "maxProperties": 32, "properties": {k: _num(lo, hi) for k, (lo, hi) in names.items()},
            "additionalProperties": False if strict else _num(-1e15, 1e15)}


def _obj(props: dict, required=(), extra=False, null=False) -> dict:
    out = {"type": ["object", "null"] if null else "object", "properties": props, "additionalProperties": INFO if extra else False}
    if required:
        out["required"] = list(required)
    return out


CELL = _obj({
    "batch_size": _int(1, 100_000), "seq_len": _int(1, 1_000_000),
    **{k: _num(0, 1e9) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "forward_p50_ms", "forward_mean_ms")},
    "throughput_per_s": _num(0, 1e12), "iterations": _int(0, 10**9, null=True),
}, required=("batch_size", "seq_len"))

GENERATION_CELL = _obj({
    "batch_size": _int(1, 100_000), "prompt_len": _int(1, 1_000_000), "new_tokens": _int(1, 1_000_000),
    **{k: _num(0, 1e9) for k in ("ttft_ms", "ttft_p90_ms", "decode_ms_per_token_p50", "decode_ms_per_token_p90")},
    "tokens_per_s": _num(0, 1e12), "kv_cache": {"type": "boolean"}, "runs": _int(0, 10**9, null=True), "sample": _str(MAX_TEXT, null=True),
}, required=("batch_size", "prompt_len", "new_tokens"))

THROUGHPUT = _obj({"texts_per_s": _num(0, 1e12), "seconds": _num(0, 1e9), "texts": _int(0, 10**9), "batches": _int(0, 10**9)}, extra=True)


def _result(task: str | None, strict: bool = True) -> dict:
    return _obj({
        "variant": {"type": "string", "pattern": VARIANT_PATTERN},
        "size_bytes": _int(0, 10**15, null=True), "param_bytes": _int(0, 10**15, null=True), "peak_rss_bytes": _int(0, 10**15, null=True),
        "baseline_rss_bytes": _int(0, 10**15, null=True), "build_s": _num(0, 1e7), "load_s": _num(0, 1e7),
        "cache_hit": {"type": ["boolean", "null"]}, "is_reference": {"type": ["boolean", "null"]},
        "quality": _quality(task, strict),
        "latency": {"type": ["array", "null"], "maxItems": MAX_CELLS, "items": CELL},
        "dataset_throughput": _obj({"sorted": THROUGHPUT, "unsorted": THROUGHPUT, "batch_size": _int(0, 100_000, null=True)}, extra=True, null=True),
        "notes": {"type": ["array", "null"], "maxItems": MAX_NOTES, "items": _str(MAX_TEXT)},
        "error": _str(MAX_TEXT, null=True),
        "hardware": _str(64, null=True),
        "generation": {"type": ["array", "null"], "maxItems": MAX_CELLS, "items": GENERATION_CELL},
        "generation_agreement": _num(0, 1),
    }, required=("variant",), extra=not strict)


MAX_TARGETS = 64
TARGET_ID = {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"}


def _target(task: str | None, strict: bool) -> dict:
    """One hardware target of a cross-hardware report: what it is, whether it finished, its machine and reference."""
    return _obj({
        "id": TARGET_ID, "name": _str(), "node_id": _str(64, null=True), "cpu": _str(null=True), "arch": _str(32, null=True),
        "cores": _int(0, 100_000, null=True), "isa": {"type": "array", "maxItems": 64, "items": _str(32)}, "gpu": _str(null=True),
        "status": {"enum": ["ok", "lost", "failed", "cancelled"]}, "error": _str(MAX_TEXT, null=True), "elapsed_s": _num(0, 1e9),
        "probe": _obj({}, extra=True, null=True), "environment": _obj({}, extra=True, null=True),
        "reference": _obj({"variant": _str(64), "quality": _quality(task, strict), "size_bytes": _int(0, 10**15, null=True),
                           "measured": {"type": ["boolean", "null"]}}, null=True),
    }, required=("id", "status"))


def _report(task: str | None, strict: bool) -> dict:
    created = {"anyOf": [_num(EARLIEST, LATEST, null=False), {"type": "string", "maxLength": 40,
                                                             "pattern": r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?$"}]}
    schema = _obj({
        "schema": _int(1, 1),
        "task": {"enum": list(TASKS)},
        "model": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
        "run_id": {"type": "string", "maxLength": 64},
        "created": created,
        "results": {"type": "array", "minItems": 1, "maxItems": MAX_RESULTS, "items": _result(task, strict)},
        "environment": _obj({
            "cpu": _str(), "arch": _str(32), "cores": _int(0, 100_000, null=True), "threads": _int(0, 100_000, null=True),
            "device": _str(32, null=True), "quantized_engine": _str(32, null=True), "python": _str(32, null=True),
            "instruction_sets": {"type": "array", "maxItems": 64, "items": _str(32)},
            "versions": {"type": "object", "maxProperties": 64, "additionalProperties": _str(64)},
        }, extra=True, null=True),
        "recommended": _obj({"variant": {"type": "string", "pattern": VARIANT_PATTERN}, "reason": _str(MAX_TEXT), "batch_size": _int(1, 100_000, null=True),
                             "p50_ms": _num(0, 1e9), "speedup": _num(0, 1e9)}, extra=True, null=True),
        "budgets": _obj({t.budget.key: _num(*t.budget.schema_range) for t in all_tasks()}, null=True),
        "data": _obj({"name": _str(), "rows": _int(0, 10**9, null=True), "texts": _int(0, 10**9, null=True),
                      "columns": {"type": "array", "maxItems": 64, "items": _str(64)}, "path": _str(1000)}, extra=True, null=True),
        "settings": _obj({"variants": {"type": "array", "maxItems": MAX_RESULTS + 1, "items": _str(300)},
                          "batch_sizes": {"type": "array", "maxItems": 64, "items": _int(1, 100_000)},
                          "seq_lengths": {"type": "array", "maxItems": 64, "items": _int(1, 1_000_000)},
                          "scenario": {"enum": ["latency", "generate"]},
                          "prompt_lengths": {"type": "array", "maxItems": 64, "items": _int(1, 1_000_000)},
                          "new_tokens": _int(1, 1_000_000),
                          "protocol": {"type": ["object", "null"], "maxProperties": 16, "additionalProperties": _num(0, 1e9)},
                          "load_average": {"type": ["object", "null"], "maxProperties": 4, "additionalProperties": _num(0, 1e6)}},
                         extra=True, null=True),
        "reference": _obj({"variant": _str(64), "quality": _quality(task, strict), "size_bytes": _int(0, 10**15, null=True),
                           "measured": {"type": ["boolean", "null"]}}, null=True),
        "hardware": {"type": ["array", "null"], "maxItems": MAX_TARGETS, "items": _target(task, strict)},
        "recommended_by_hardware": {"type": ["object", "null"], "maxProperties": MAX_TARGETS, "propertyNames": TARGET_ID,
                                    "additionalProperties": _obj({"variant": {"type": "string", "pattern": VARIANT_PATTERN}, "reason": _str(MAX_TEXT),
                                                                  "batch_size": _int(1, 100_000, null=True), "p50_ms": _num(0, 1e9),
                                                                  "speedup": _num(0, 1e9)}, extra=True, null=True)},
        "history": _obj({"config_key": _str(64, null=True), "imported": {"type": "boolean"}, "saved": _num(0, LATEST),
                         "origin_run_id": _str(64, null=True), "owner": _str(64, null=True)}, null=True),
    }, required=("task", "model", "results"))
    if not strict:
        schema["additionalProperties"] = True
    return schema


@lru_cache(maxsize=8)
def _validator(task: str | None, strict: bool):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_report(task, strict))


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the report"


def _short(error) -> str:
    """One line for a jsonschema error, with the offending value cut short (it may be huge)."""
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{where}: unknown field '{str(extra[0])[:40]}'" if extra else f"{where}: unknown field"
    if error.validator in ("maxItems", "maxLength", "maxProperties"):
        return f"{where}: too long (at most {error.validator_value})"
    if error.validator == "pattern":
        return f"{where}: '{str(error.instance)[:40]}' is not a variant name in recipe[:key=value] form"
    if error.validator == "enum":
        return f"{where}: '{str(error.instance)[:40]}' is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        return f"{where}: {error.message[:120]}"
    if error.validator == "minItems" and error.validator_value == 1:
        return f"{where} must be a non-empty list"
    if error.validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = " or ".join({"integer": "an integer", "number": "a number", "string": "a string", "object": "an object",
                             "array": "a list", "boolean": "true/false", "null": "null"}.get(k, k) for k in kinds)
        value = repr(error.instance)
        return f"{where}: {value if len(value) <= 40 else value[:37] + '...'} is not {words}"
    if error.validator in ("minimum", "maximum"):
        side = "at least" if error.validator == "minimum" else "at most"
        return f"{where}: {error.instance!r:.40} is out of range (must be {side} {error.validator_value:g})"
    value = repr(error.instance)
    value = value if len(value) <= 40 else value[:37] + "..."
    return f"{where}: {value} is not valid ({error.validator} {str(error.validator_value)[:60]})"


def check(data, *, strict: bool) -> str | None:
    """The first problem of ``data`` as a report, in one line; None when it is a valid report."""
    if not isinstance(data, dict):
        return f"its top level is a {type(data).__name__}, not an object"
    task = data.get("task") if data.get("task") in TASKS else None
    validator = _validator(task, strict)
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(data))
    if error is not None:
        return _short(error)
    created = data.get("created")
    if isinstance(created, str) and created:
        try:
            parsed = _dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            return f"created: '{created[:40]}' is not a date"
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.timezone.utc)
        if not EARLIEST <= parsed.timestamp() <= LATEST:
            return f"created: '{created[:40]}' is out of range (2000 to 2100)"
    names = [(r.get("hardware"), r["variant"]) for r in data["results"]]   # a variant once per hardware target
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        return f"results: variant '{dup[1]}' appears twice" + (f" on target '{dup[0]}'" if dup[0] else "")
    targets = [t["id"] for t in data.get("hardware") or []]
    if len(set(targets)) != len(targets):
        return "hardware: a target id appears twice"
    stray = next((r.get("hardware") for r in data["results"] if r.get("hardware") and r["hardware"] not in targets), None)
    if stray:
        return f"results: target '{stray}' is not in the report's hardware list"
    return None


def schema(task: str | None = None, strict: bool = True) -> dict:
    """The schema itself (for operators and tests)."""
    return _report(task, strict)
