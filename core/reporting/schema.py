"""The JSON Schema of a saved or imported report, checked with ``jsonschema`` (Draft 2020-12), derived from the
report's field definitions (core/reporting/results.py, cells.py, throughput.py).

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
import json
from functools import lru_cache

from ..errors import QlabError
from ..tasks import TASKS
from .cells import GenerationCell, LatencyCell
from .fields import EARLIEST, LATEST, num, obj, schema_of, text
from .results import Report, VariantResult, report_to_json
from .throughput import MODE_SCHEMA, SCHEMA

CELL = schema_of(LatencyCell)                    # the entries of a result's ``latency``
GENERATION_CELL = schema_of(GenerationCell)      # ... of its ``generation``
THROUGHPUT, DATASET_THROUGHPUT = MODE_SCHEMA, SCHEMA   # one mode of its ``dataset_throughput``, and the whole entry

# written by core.storage.history beside a saved run (not a field of the report itself)
HISTORY = obj({"config_key": text(64, null=True), "imported": {"type": "boolean"}, "saved": num(0, LATEST),
               "origin_run_id": text(64, null=True), "owner": text(64, null=True),
               "owner_email": text(320, null=True)}, null=True)


def _result(task: str | None, strict: bool = True) -> dict:
    return schema_of(VariantResult, task=task, strict=strict, extra=not strict)


def _report(task: str | None, strict: bool) -> dict:
    schema = schema_of(Report, task=task, strict=strict)
    schema["properties"]["history"] = HISTORY
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


class ReportBug(QlabError):
    """The lab produced a report its own import would refuse: a bug in the lab, never the user's input."""


def checked_json(report, *, what: str = "report") -> str:
    """The JSON text of ``report`` (a Report or its dict), after checking that the lab's own import accepts it.

    The one writer of a report: runs saved by the dashboard (core.storage.history) and the CLI's ``--out`` both go
    through it, so every report the lab writes, it reads. The check runs on the text as it will be read back (NaN as
    null, numpy numbers as numbers) with the import's strict rules; a failure raises :class:`ReportBug` naming the field.
    """
    text = report_to_json(report)
    problem = check(json.loads(text), strict=True)
    if problem:
        raise ReportBug(f"Bug: the lab wrote a {what} that its own import refuses ({problem}); nothing was saved. "
                        "Please report this with the run's settings.")
    return text
