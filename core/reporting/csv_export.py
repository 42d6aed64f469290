"""The flat CSV export: one row per variant x batch size x seq length (or, in a generation run, x prompt length),
with the variant's quality metrics repeated on each row. The columns are derived from the fields' CSV positions
(core/reporting/fields.py): the fixed ones, the generation scenario's, the task's metrics, then the error."""

from __future__ import annotations

import csv
import io

from .cells import GenerationCell, LatencyCell
from .fields import CSV_CHECK, CSV_FIXED, CSV_GENERATION, CSV_TAIL, csv_columns
from .results import Report, VariantResult, as_report

CSV_COLUMNS = csv_columns(Report, VariantResult, LatencyCell, positions=range(CSV_FIXED, CSV_GENERATION))
GENERATION_COLUMNS = csv_columns(GenerationCell, VariantResult, positions=range(CSV_GENERATION, CSV_CHECK))
CHECK_COLUMNS = csv_columns(LatencyCell, GenerationCell, positions=range(CSV_CHECK, CSV_CHECK + 100))   # each cell's outputs against fp32's
TAIL_COLUMNS = csv_columns(VariantResult, positions=range(CSV_TAIL, CSV_TAIL + 100))

REPORT_COLUMNS = csv_columns(Report, positions=range(CSV_FIXED, CSV_GENERATION))
RESULT_COLUMNS = [c for c in csv_columns(VariantResult) if c not in GENERATION_COLUMNS]   # on every row
RESULT_GENERATION_COLUMNS = [c for c in csv_columns(VariantResult) if c in GENERATION_COLUMNS]   # on generation rows
LATENCY_COLUMNS = csv_columns(LatencyCell)
GENERATION_CELL_COLUMNS = csv_columns(GenerationCell)

CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """No spreadsheet formula from a CSV cell: text starting with = + - @ (or tab/CR) gets a leading apostrophe;
    numbers stay numbers (a negative number is not text)."""
    if isinstance(value, str) and value.startswith(CSV_TRIGGERS):
        return "'" + value
    return value


def report_to_csv(report) -> str:
    """One row per variant x batch size x seq length, with the variant's quality metrics repeated on each row."""
    rep = as_report(report)
    qkeys = sorted({k for r in rep.results for k, v in r.quality.items() if isinstance(v, (int, float)) or v is None})
    out = io.StringIO()
    generation = GENERATION_COLUMNS if any(r.generation for r in rep.results) else []
    checks = CHECK_COLUMNS if any(c.checked for r in rep.results for c in [*r.latency, *r.generation]) else []
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS + generation + checks + qkeys + TAIL_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in rep.results:
        base = {**{k: getattr(rep, k) for k in REPORT_COLUMNS}, **{k: getattr(r, k) for k in RESULT_COLUMNS},
                **{k: r.quality.get(k) for k in qkeys}}
        for c in r.latency or ([] if r.generation else [None]):
            row = dict(base)
            if c is not None:
                row.update({k: getattr(c, k) for k in LATENCY_COLUMNS})
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
        for g in r.generation:   # the generation scenario: one row per batch size x prompt length
            row = dict(base, **{k: getattr(r, k) for k in RESULT_GENERATION_COLUMNS}, **{k: getattr(g, k) for k in GENERATION_CELL_COLUMNS})
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return out.getvalue()
