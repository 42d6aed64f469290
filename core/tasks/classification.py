"""Text classification: the argmax of the logits, judged by accuracy against the gold labels (and fp32's)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DataError
from .base import Axis, Budget, Column, Task, fmt, signed
from .dataset import Dataset, need_columns


@dataclass(frozen=True, eq=False)
class ClassificationTask(Task):
    def quality_delta(self, quality, ref_quality):
        value, ref = quality.get(self.primary), ref_quality.get(self.primary)
        if value is None or ref is None:
            return None, ""
        return (value - ref) * 100.0, "pt"

    def delta_words(self, delta):
        return "" if delta is None else f"{signed(delta, 1)} pt accuracy"

    def metric_cell(self, value):
        return fmt(None if value is None else value * 100, ".1f") + ("%" if value is not None else "")

    def delta_cell(self, delta):
        return "-" if delta is None else f"{signed(delta, 1)} pt"

    def derived_quality(self, quality, ref_quality):
        if ref_quality.get("accuracy") is None:
            return {}
        return {"accuracy_drop_pt": (ref_quality["accuracy"] - quality["accuracy"]) * 100.0}

    def check_budget(self, quality, ref_quality, limit):
        acc, ref = quality.get("accuracy"), ref_quality.get("accuracy")
        if acc is None or ref is None:
            return None, "no accuracy"
        drop = (ref - acc) * 100.0
        ok = drop <= limit + 1e-9
        change = f"accuracy {acc * 100:.1f}% ({signed(-drop, 1)} pt vs fp32's {ref * 100:.1f}%)"
        return ok, f"{change}, {'within' if ok else 'beyond'} the {limit:g} pt budget"

    def budget_line(self, limit, ref, percent):
        if ref is None:
            return None
        drop = float(limit)
        value = float(ref) * 100 - drop if percent else float(ref) - drop
        return value, f"accuracy ≥ fp32 − {drop:g} pt"

    def read_table(self, columns, rows, name):
        need_columns(columns, ("text", "label"), name, self.name, "give text,label columns")
        texts, labels = [], []
        for i, row in enumerate(rows, 1):
            t, lab = (row.get("text") or "").strip(), (row.get("label") or "").strip()
            if not t:
                continue
            if not lab:
                raise DataError(f"'{name}' row {i} has text but an empty label; every row needs a label.")
            texts.append(t)
            labels.append(lab)
        if not texts:
            raise DataError(f"'{name}' has no rows with text.")
        return Dataset(name, self.name, texts, labels=labels, columns=columns, rows=len(texts))

    def read_text(self, text, name):
        raise DataError(f"'{name}' is plain text; classification needs labels: give a CSV/TSV/JSONL file with text,label columns.")

    def onnx_snippet_tail(self, run, d):
        return [
            f"logits = {run}",
            'labels = json.load(open("qlab.json"))["postprocessing"]["labels"]',
            "print([labels[i] for i in logits.argmax(-1)])",
        ]

    def torch_snippet_tail(self, forward):
        return [f"    logits = {forward}.float()", "print([model.config.id2label[i] for i in logits.argmax(-1).tolist()])"]

    def output_shape(self, config, labels):
        return ["batch", len(labels) or "labels"]

    def postprocessing(self, labels):
        return {"description": "the predicted class is the argmax of the logits; labels[i] names class i.", "labels": list(labels)}


LABELS_AXIS = "Labels equal to fp32's on the cell's inputs (higher is better)"

TASK = ClassificationTask(
    name="classification",
    title="classification (labels)",
    sample_file="classification_test.csv",
    calibration_file="classification_train.csv",
    columns=("text,label",),
    primary="accuracy", primary_label="accuracy", higher_is_better=True,
    metrics={"accuracy": (0, 1), "f1_weighted": (0, 1), "f1_macro": (0, 1), "agreement": (0, 1), "accuracy_drop_pt": (-100, 100)},
    budget=Budget("max_accuracy_drop", 1.0, "--max-accuracy-drop", "accuracy drop ≤ {:g} pt",
                  "Quality budget: maximum accuracy drop (points)", 0.0, 100.0, 0.1, "%.1f",
                  "A variant qualifies when its accuracy is at most this many points below fp32's (CLI: --max-accuracy-drop).",
                  schema_range=(0, 100), valid_max=float("inf"), cli_help="classification budget: accuracy points (default 1.0)",
                  # a label that differs from fp32's can cost at most that much accuracy: a cell's changed labels, in points
                  quantity="accuracy drop", cell_metric="out_agreement", cell_name="label agreement", cell_fmt=".0%",
                  on_cell=lambda b: 1.0 - float(b) / 100.0, cell_axis=LABELS_AXIS),
    budgets=(
        Budget("min_label_agreement", 0.99, "--min-label-agreement", "label agreement ≥ {:g}",
               "Quality budget: minimum share of labels equal to fp32's", 0.0, 1.0, 0.01, "%.2f",
               "A variant qualifies when at least this share of its labels equal fp32's on the data (CLI: --min-label-agreement); "
               "no gold labels needed.",
               schema_range=(0, 1), valid_max=1.0, cli_help="classification budget on label agreement with fp32 instead of accuracy (e.g. 0.99)",
               quantity="label agreement", metric="agreement", cell_metric="out_agreement", cell_name="label agreement", cell_fmt=".0%",
               cell_axis=LABELS_AXIS),
    ),
    axis=Axis("Accuracy (%, higher is better)", percent=True),
    output_name="logits",
    snippet_output="logits",
    model_class="AutoModelForSequenceClassification",
    table_columns=(Column("f1_macro", "F1 macro"),),
    has_labels=True,
    example="The central bank raised interest rates by half a point.\nThe striker scored twice in the second half.\n"
            "Astronomers found water vapour on a distant planet.\nPeace talks resumed in Geneva on Monday.",
)
