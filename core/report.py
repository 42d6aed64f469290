"""The evaluation report, for the callers written before it became the package ``core.reporting``: the same names,
re-exported from the modules that now hold them (one job each; see core/reporting/__init__.py).
"""

from __future__ import annotations

from .reporting.cells import GenerationCell, LatencyCell
from .reporting.compare import compare_to_reference, cross_hardware_rows, delta_words, quality_delta, reference_quality
from .reporting.csv_export import CSV_COLUMNS, GENERATION_COLUMNS, csv_cell, report_to_csv
from .reporting.results import (
                                REFERENCE,
                                SCHEMA_VERSION,
                                Report,
                                ReportError,
                                VariantResult,
                                as_report,
                                finite,
                                geomean,
                                report_from_json,
                                report_to_json,
                                speed_unit,
)
from .reporting.table import format_table, generation_lines
from .reporting.throughput import DatasetThroughput, ThroughputMode, throughput_summary
from .reporting.throughput_table import throughput_heading, throughput_lines, throughput_rows

__all__ = [
    "CSV_COLUMNS", "GENERATION_COLUMNS", "REFERENCE", "SCHEMA_VERSION", "DatasetThroughput", "GenerationCell", "LatencyCell", "Report",
    "ReportError", "ThroughputMode", "VariantResult", "as_report", "compare_to_reference", "cross_hardware_rows", "csv_cell", "delta_words",
    "finite", "format_table", "generation_lines", "geomean", "quality_delta", "reference_quality", "report_from_json", "report_to_csv",
    "report_to_json", "speed_unit", "throughput_heading", "throughput_lines", "throughput_rows", "throughput_summary",
]
