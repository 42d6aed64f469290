"""What a task declares about itself: its data, quality metrics, budget, primary metric, chart axis and outputs.

One frozen instance per task (``core/tasks/embedding.py`` and its siblings); the rest of the lab asks the task
instead of branching on its name. Low level: imports nothing from the lab but ``errors`` (and that only lazily).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


def fmt(value, spec: str, missing: str = "-") -> str:
    """``value`` formatted with ``spec``; ``missing`` for None or a non-finite float."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, spec)


def signed(value: float, digits: int) -> str:
    """'+0.4' / '-1.2': rounded first, so -0.04 shows as +0.0."""
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def _as_is(limit: float) -> float:
    return float(limit)


@dataclass(frozen=True)
class Budget:
    """One quality measure a task's budget can be put on: its key in ``EvalConfig.budgets``, default, CLI flag, the
    number input on Models & variants, its range in a saved report, its words ("cosine fidelity ≥ 0.99"), and the same
    measure on one latency cell's outputs against fp32's (core/measure/cell_check.py).

    A task's first budget (``Task.budget``) is judged by the task's own rule (``Task.check_budget``: its primary
    metric's change from fp32's); the others (``Task.budgets``) read ``metric`` from a variant's quality, which is
    already measured against fp32's, and compare it with the limit (``higher``: at least it; else at most it)."""

    key: str                         # min_cosine | max_accuracy_drop | max_ppl_increase | max_kl_mean | ...
    default: float
    flag: str                        # the CLI flag: --min-cosine
    phrase: str                      # words with one {:g} for the value, using ≥ / ≤
    label: str                       # the number input's label
    min_value: float                 # the number input's range and step
    max_value: float
    step: float
    fmt: str
    help: str
    schema_range: tuple[float, float]   # what a saved report may carry
    valid_max: float                    # the largest value an evaluation accepts
    cli_help: str
    quantity: str = ""                  # what is measured, in a few words: 'mean KL divergence' (the measure picker's words)
    valid_min: float = 0.0              # the smallest value an evaluation accepts
    metric: str | None = None           # the quality key judged as is (None: the task's own rule)
    higher: bool = True                 # the metric must be at least the limit (True) or at most it
    offset: float = 0.0                 # subtracted from the metric first (similarity Spearman - 1 is its change from fp32's 1)
    # the same measure on one latency cell (a LatencyCell field), its words, format and chart axis, and the budget on its scale
    cell_metric: str = ""
    cell_name: str = ""
    cell_fmt: str = ".3f"
    cell_unit: str = ""
    cell_axis: str = ""
    cell_higher: bool = True
    on_cell: Callable[[float], float] = _as_is

    def words(self, value: float) -> str:
        """'cosine fidelity ≥ 0.99' (the dashboard's words)."""
        return self.phrase.format(value)

    def ascii_words(self, value: float) -> str:
        """'cosine fidelity >= 0.99' (the recommendation's and the CLI's words)."""
        return self.words(value).replace("≥", ">=").replace("≤", "<=")

    @property
    def dest(self) -> str:
        """The argparse attribute of the flag."""
        return self.flag.lstrip("-").replace("-", "_")

    def within(self, value: float, limit: float) -> bool:
        """A data-level value (after ``offset``) against the limit."""
        return value >= limit - 1e-12 if self.higher else value <= limit + 1e-12

    def cell_value(self, cell) -> float | None:
        return getattr(cell, self.cell_metric, None) if self.cell_metric else None

    def cell_within(self, value: float, limit: float) -> bool:
        """A cell's value against the limit on the cell's scale (``on_cell``)."""
        edge = self.on_cell(limit)
        return value >= edge - 1e-12 if self.cell_higher else value <= edge + 1e-12

    def cell_words(self, value: float) -> str:
        return f"{self.cell_name} {format(value, self.cell_fmt)}{self.cell_unit}"


@dataclass(frozen=True)
class Axis:
    """The quality axis of the charts: its title, and whether a 0..1 metric is shown in percent."""

    title: str
    percent: bool = False


@dataclass(frozen=True)
class Column:
    """An extra quality column of the CLI table (after the primary metric)."""

    key: str
    header: str
    percent: bool = False           # a 0..1 share shown as '95.0%'
    only_if_measured: bool = False  # shown only when some result has it

    def cell(self, value) -> str:
        if self.percent:
            return fmt(value * 100 if value is not None else None, ".1f") + ("%" if value is not None else "")
        return fmt(value, ".4f")


@dataclass(frozen=True, eq=False)
class Task:
    """A task's declaration. Subclasses fill in the few behaviours that differ (deltas, budget checks, reading data, export lines)."""

    name: str
    title: str                              # the task picker's words
    sample_file: str                        # in data/samples/: the data a comparison uses unless given other
    calibration_file: str                   # in data/samples/: texts that calibrate static and mixed int8 (not the test data)
    columns: tuple[str, ...]                # the data's columns, in words for errors and docs
    primary: str                            # the metric a variant is judged by
    primary_label: str                      # its column header in tables
    higher_is_better: bool
    metrics: dict                           # every quality metric the task reports: name -> (minimum, maximum) in a saved report
    budget: Budget                          # the measure the budget is on unless a person picks another
    axis: Axis
    output_name: str                        # the model output the task reads: last_hidden_state | logits
    snippet_output: str                     # the variable an exported folder's snippet ends with: embeddings | logits
    model_class: str                        # transformers' Auto class that loads such a model
    table_columns: tuple[Column, ...] = ()
    pooled: bool = False                    # sentence vectors: the output mean-pooled over the mask, compared by cosine
    has_labels: bool = False                # the model names its classes; the data carries a label per text
    generates: bool = False                 # next-token logits: perplexity on raw text, generation, KV caches
    also_from: tuple[str, ...] = ()         # other tasks whose models can do this one (an encoder under a classifier head)
    example: str = ""                       # the Playground's example input
    budgets: tuple[Budget, ...] = ()        # the other measures a person may put the budget on instead

    @property
    def per_position(self) -> bool:
        """Whether the model output the task reads has a sequence axis (hidden states, next-token logits), rather than
        one row per text (a classifier's logits)."""
        return self.pooled or self.generates

    # -- the primary metric against fp32 ------------------------------------------------------------
    def quality_delta(self, quality: dict, ref_quality: dict) -> tuple[float | None, str]:
        """(delta, unit) of the primary metric vs fp32's."""
        raise NotImplementedError

    def delta_words(self, delta: float | None) -> str:
        raise NotImplementedError

    def metric_cell(self, value) -> str:
        """The primary metric in the CLI table."""
        return fmt(value, ".3f")

    def delta_cell(self, delta) -> str:
        raise NotImplementedError

    def derived_quality(self, quality: dict, ref_quality: dict) -> dict:
        """Metrics computed from fp32's once every variant is measured (accuracy drop, perplexity increase)."""
        return {}

    def table_note(self, ref_quality: dict) -> str | None:
        """A line under the CLI table that explains the primary metric, if it needs one."""
        return None

    # -- the budget ----------------------------------------------------------------------------------
    @property
    def all_budgets(self) -> tuple[Budget, ...]:
        """Every measure the budget can be on, the default first."""
        return (self.budget,) + tuple(self.budgets)

    def budget_by_key(self, key: str) -> Budget | None:
        return next((b for b in self.all_budgets if b.key == key), None)

    def chosen_budget(self, budgets: dict | None) -> tuple[Budget, float]:
        """(the measure, its limit) that ``budgets`` (a run's ``{key: value}``) puts this task's budget on: a picked
        measure when one of its keys is there, else the default measure at the given value or its default."""
        given = budgets or {}
        for b in self.budgets:
            if given.get(b.key) is not None:
                return b, float(given[b.key])
        value = given.get(self.budget.key)
        return self.budget, float(self.budget.default if value is None else value)

    def check_budget(self, quality: dict, ref_quality: dict, limit: float) -> tuple[bool | None, str]:
        """The default measure's rule: (within budget?, words); None when the metric is missing."""
        raise NotImplementedError

    def judge(self, quality: dict, ref_quality: dict, budgets: dict | None) -> tuple[bool | None, str]:
        """(within the chosen budget?, words such as 'KL divergence 0.0042 <= 0.01'); None when the measure is missing."""
        budget, limit = self.chosen_budget(budgets)
        if budget.metric is None:
            return self.check_budget(quality, ref_quality, limit)
        value = quality.get(budget.metric)
        if value is None:
            return None, f"no {budget.quantity}"
        value = float(value) - budget.offset
        ok = budget.within(value, limit)
        return ok, f"{budget.quantity} {value:.4f} {('>=' if ok else '<') if budget.higher else ('<=' if ok else '>')} {limit:g}"

    def cell_verdict(self, cell, budgets: dict | None) -> tuple[bool | None, str]:
        """(within the chosen budget?, words such as 'cosine 0.836') of one latency cell's outputs against fp32's on the
        same inputs (the ``out_*`` fields of core.reporting.cells.LatencyCell); None when the cell was not checked.

        A cell the chosen measure cannot be computed on (a batch too small to rank neighbours in) is judged by the
        default measure at its default, and the words say so."""
        budget, limit = self.chosen_budget(budgets)
        value = budget.cell_value(cell)
        if value is None and budget is not self.budget:
            fallback = self.budget
            value = fallback.cell_value(cell)
            if value is None:
                return None, "not checked"
            ok = fallback.cell_within(value, fallback.default)
            return ok, f"{fallback.cell_words(value)} (too few texts for {budget.quantity}; judged by {fallback.ascii_words(fallback.default)})"
        if value is None:
            return None, "not checked"
        return budget.cell_within(value, limit), budget.cell_words(value)

    def budget_line(self, limit: float, ref, percent: bool) -> tuple[float, str] | None:
        """The budget as a value on the chart's quality axis and in words, or None (``ref``: fp32's primary metric)."""
        raise NotImplementedError

    def accepts_model_of(self, inferred: str) -> bool:
        """Whether a model whose config says ``inferred`` can be evaluated for this task."""
        return inferred == self.name or inferred in self.also_from

    # -- data ----------------------------------------------------------------------------------------
    def read_table(self, columns: list[str], rows: list[dict], name: str):
        """A Dataset from a table's rows (header names already lower-cased); DataError for what a person can fix."""
        raise NotImplementedError

    def read_text(self, text: str, name: str):
        """A Dataset from a plain .txt file."""
        raise NotImplementedError

    def preview_rows(self, dataset, limit: int) -> list[dict]:
        """The first ``limit`` rows of ``dataset`` as the Data page shows them."""
        if dataset.labels is not None:
            return [{"text": t, "label": lab} for t, lab in zip(dataset.texts[:limit], dataset.labels[:limit])]
        return [{"text": t} for t in dataset.texts[:limit]]

    # -- export --------------------------------------------------------------------------------------
    def output_shape(self, config, labels: list[str]) -> list:
        """The output's shape in an exported folder's description (``config``: the model's transformers config)."""
        raise NotImplementedError

    def postprocessing(self, labels: list[str]) -> dict:
        """How a user turns the output into the task's answer, for an exported folder's qlab.json."""
        raise NotImplementedError

    def onnx_snippet_tail(self, run: str, d: dict) -> list[str]:
        """The last lines of an exported ONNX folder's snippet: run the session (``run``: the expression) and turn
        its output into the task's answer. ``d``: the snippet's facts (input names, output name, max length)."""
        raise NotImplementedError

    def torch_snippet_tail(self, forward: str) -> list[str]:
        """The lines inside and after ``with torch.inference_mode():`` of a torch snippet (``forward``: the call)."""
        raise NotImplementedError
