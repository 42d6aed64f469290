"""Plotly figure builders for the dashboard and the HTML export: pure functions, report dict -> go.Figure, one module per page.

* ``common``              the colour of each recipe (``RECIPE_COLORS``, one table), the fp32 reference's look, layout defaults
* ``compare``             Compare: quality against latency, size on disk, latency sweeps; ``compare_figures`` gathers them
* ``compare_batching``    Compare: whole-dataset throughput, sorted against unsorted batches
* ``compare_generation``  Compare, generation runs: time to first token, tokens per second
* ``cross_hardware``      Compare, across hardware targets: speed-up against each target's own fp32
* ``cross_run``           History: latency across saved runs and machines
* ``weights``             Weights: weight histograms and the quantization error per layer
* ``weights_mixed``       Weights: the accuracy-aware mixed-precision search (onnx-int8-mixed)
* ``playground``          Playground: similarity heatmaps
* ``html_report``         the standalone HTML report of a run (every Compare chart, plotly.js inline)

Reading a report (its results, quality axis, speed cells, the rows against fp32, the Pareto front) is core/charts/report_access.py,
below the charts; its names are re-exported here with every chart's, so ``from core import charts; charts.x(...)`` works.
Nothing here needs torch or Streamlit.
"""

from __future__ import annotations

from .common import EXTRA_COLORS, FONT, RECIPE_COLORS, REFERENCE_COLOR, fmt_bytes, point_words, recipe_of, report_colors, speed_words, variant_colors
from .compare import budget_threshold, compare_figures, latency_batch_figure, latency_seq_figure, quality_latency_figure, size_figure
from .compare_batching import batching_figure
from .compare_generation import tokens_per_s_figure, ttft_figure
from .cross_hardware import TARGET_COLORS, hardware_speedup_figure
from .cross_run import RUN_COLORS, cross_run_figure, run_label
from .html_report import export_html
from .playground import difference_figure, similarity_figure
from .report_access import (
    REFERENCE,
    batch_sizes,
    default_point,
    generation_cells,
    is_generation,
    is_reference,
    latency_at,
    latency_points,
    ok_results,
    pareto_front,
    quality_spec,
    quality_value,
    reference_quality,
    reference_rows,
    seq_lengths,
    shown_quality,
    target_label,
)
from .weights import SCHEME_COLORS, layer_error_figure, weight_histogram_figure
from .weights_mixed import INT8_NODE_COLOR, KEPT_FP32_COLOR, TARGET_COLOR, fidelity_trail_figure, sensitivity_figure, sensitivity_summary, short_node_name

__all__ = [
    "EXTRA_COLORS", "FONT", "INT8_NODE_COLOR", "KEPT_FP32_COLOR", "RECIPE_COLORS", "REFERENCE", "REFERENCE_COLOR", "RUN_COLORS", "SCHEME_COLORS",
    "TARGET_COLOR", "TARGET_COLORS", "batch_sizes", "batching_figure", "budget_threshold", "compare_figures", "cross_run_figure", "default_point",
    "difference_figure", "export_html", "fidelity_trail_figure", "fmt_bytes", "generation_cells", "hardware_speedup_figure", "is_generation",
    "is_reference", "latency_at", "latency_batch_figure", "latency_points", "latency_seq_figure", "layer_error_figure", "ok_results", "pareto_front",
    "point_words", "quality_latency_figure", "quality_spec", "quality_value", "recipe_of", "reference_quality", "reference_rows", "report_colors",
    "run_label", "sensitivity_figure", "sensitivity_summary", "seq_lengths", "short_node_name", "shown_quality", "similarity_figure", "size_figure",
    "speed_words", "target_label", "tokens_per_s_figure", "ttft_figure", "variant_colors", "weight_histogram_figure",
]
