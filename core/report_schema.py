"""The JSON Schema of a saved or imported report: re-exported from core/reporting/schema.py, where it is derived from
the report's field definitions, for the callers written before the split."""

from __future__ import annotations

from .reporting.fields import EARLIEST, LATEST, MAX_CELLS, MAX_NAME, MAX_NOTES, MAX_RESULTS, MAX_TARGETS, MAX_TEXT, RUN_ID_PATTERN, VARIANT_PATTERN
from .reporting.schema import CELL, GENERATION_CELL, HISTORY, THROUGHPUT, check, schema

__all__ = ["CELL", "EARLIEST", "GENERATION_CELL", "HISTORY", "LATEST", "MAX_CELLS", "MAX_NAME", "MAX_NOTES", "MAX_RESULTS", "MAX_TARGETS",
           "MAX_TEXT", "RUN_ID_PATTERN", "THROUGHPUT", "VARIANT_PATTERN", "check", "schema"]
