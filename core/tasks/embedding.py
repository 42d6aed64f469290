"""Sentence embeddings: mean-pooled last hidden states, judged by cosine fidelity to fp32's."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import DataError
from .base import Axis, Budget, Column, Task, fmt, signed
from .dataset import Dataset, text_rows


@dataclass(frozen=True, eq=False)
class EmbeddingTask(Task):
    def quality_delta(self, quality, ref_quality):
        value = quality.get(self.primary)
        if value is None:
            return None, ""
        return value - 1.0, "cosine"          # cosine fidelity is already measured against fp32 (fp32 = 1)

    def delta_words(self, delta):
        return "" if delta is None else f"cosine {1 + delta:.4f}"

    def metric_cell(self, value):
        return fmt(value, ".4f")

    def delta_cell(self, delta):
        return "-" if delta is None else signed(delta, 4)

    def table_note(self, ref_quality):
        ref_sp = ref_quality.get("spearman_fp32") or ref_quality.get("spearman")
        pairs = ref_quality.get("sts_pairs")
        withheld = (f"; spearman vs gold scores withheld: only {pairs} scored pair{'s' if pairs != 1 else ''} (at least 10 make it meaningful)"
                    if pairs is not None and ref_sp is None else "")
        return ("cosine = mean cosine similarity to fp32's sentence embedding (fp32 = 1); sim. ranks = Spearman of all pairwise "
                "similarities against fp32's" + (f"; fp32's own spearman vs gold scores: {ref_sp:.4f}." if ref_sp is not None else withheld + "."))

    def check_budget(self, quality, ref_quality, limit):
        cos = quality.get("cosine_fidelity")
        if cos is None:
            return None, "no cosine fidelity"
        ok = cos >= limit - 1e-12
        return ok, f"cosine fidelity {cos:.4f} {'>=' if ok else '<'} {limit:g}"

    def budget_line(self, limit, ref, percent):
        value = float(limit)
        return value, f"cosine ≥ {value:g}"

    def read_table(self, columns, rows, name):
        if "sentence1" in columns and "sentence2" in columns:
            s1, s2, scores = [], [], []
            has_score = "score" in columns
            for i, row in enumerate(rows, 1):
                a, b = (row.get("sentence1") or "").strip(), (row.get("sentence2") or "").strip()
                if not a or not b:
                    raise DataError(f"'{name}' row {i} has an empty sentence1 or sentence2.")
                if has_score:
                    raw = (row.get("score") or "").strip()
                    try:
                        score = float(raw)
                    except ValueError:
                        score = math.nan
                    if not math.isfinite(score):
                        raise DataError(f"'{name}' row {i}: score '{raw[:30]}' is not a number.")
                    scores.append(score)
                s1.append(a)
                s2.append(b)
            pairs = list(zip(s1, s2, scores)) if has_score else None
            return Dataset(name, self.name, s1 + s2, pairs=pairs, columns=columns, rows=len(s1))
        if "text" not in columns:
            have = ", ".join(columns)
            raise DataError(f"'{name}' has no text column (or sentence1,sentence2 columns) needed for embedding (it has: {have}); rename the column to text.")
        texts = text_rows(rows, name)
        return Dataset(name, self.name, texts, columns=columns, rows=len(texts))

    def read_text(self, text, name):
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        return Dataset(name, self.name, lines, columns=["text"], rows=len(lines))

    def preview_rows(self, dataset, limit):
        if dataset.pairs is not None:
            return [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in dataset.pairs[:limit]]
        if dataset.texts and "sentence1" in dataset.columns:
            n = dataset.rows
            return [{"sentence1": dataset.texts[i], "sentence2": dataset.texts[n + i]} for i in range(min(limit, n))]
        return super().preview_rows(dataset, limit)

    def onnx_snippet_tail(self, run, d):
        return [
            f"hidden = {run}",
            "embeddings = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)  # mean pooling over the mask",
            "embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)  # L2 normalisation",
        ]

    def torch_snippet_tail(self, forward):
        return [
            f"    hidden = {forward}.float()",
            'mask = enc["attention_mask"].unsqueeze(-1).float()',
            "embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)  # mean pooling, L2 norm",
        ]

    def output_shape(self, config, labels):
        hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or "hidden"
        return ["batch", "sequence", hidden]

    def postprocessing(self, labels):
        return {"description": "sentence embeddings are the mean of the last hidden state over the attention mask, then L2-normalised "
                               "(as the lab measures them; all-MiniLM-L6-v2's own recipe).",
                "pooling": "mean over attention_mask", "normalize": "l2"}


TASK = EmbeddingTask(
    name="embedding",
    title="embedding (sentence vectors)",
    sample_file="embedding_pairs.csv",
    calibration_file="embedding_sentences.csv",
    columns=("text", "sentence1,sentence2[,score]"),
    primary="cosine_fidelity", primary_label="cosine", higher_is_better=True,
    metrics={"cosine_fidelity": (-1.001, 1.001), "cosine_min": (-1.001, 1.001), "retrieval_agreement": (0, 1), "retrieval_k": (0, 10_000),
             "spearman": (-1.001, 1.001), "spearman_fp32": (-1.001, 1.001), "similarity_spearman": (-1.001, 1.001), "sts_pairs": (0, 1e9)},
    budget=Budget("min_cosine", 0.99, "--min-cosine", "cosine fidelity ≥ {:g}",
                  "Quality budget: minimum cosine fidelity to fp32", 0.0, 1.0, 0.001, "%.4f",
                  "A variant qualifies when its mean cosine similarity to fp32's sentence embeddings is at least this (CLI: --min-cosine).",
                  schema_range=(-1, 1), valid_max=1.0, cli_help="embedding budget: minimum cosine fidelity (default 0.99)",
                  quantity="cosine fidelity", cell_metric="out_cosine_mean", cell_name="cosine",
                  cell_axis="Mean cosine to fp32 on the cell's inputs (higher is better)"),
    budgets=(
        Budget("min_retrieval_agreement", 0.95, "--min-retrieval-agreement", "retrieval agreement ≥ {:g}",
               "Quality budget: minimum top-5 retrieval agreement with fp32", 0.0, 1.0, 0.01, "%.2f",
               "A variant qualifies when, for each text, this share of its 5 nearest neighbours by the variant's embeddings are also fp32's "
               "(CLI: --min-retrieval-agreement). Each timed cell ranks the neighbours within its batch (8 texts or more).",
               schema_range=(0, 1), valid_max=1.0, cli_help="embedding budget on top-5 retrieval agreement with fp32 instead of cosine (e.g. 0.95)",
               quantity="retrieval agreement", metric="retrieval_agreement", cell_metric="out_retrieval_agreement",
               cell_name="retrieval agreement", cell_fmt=".2f",
               cell_axis="Top-5 neighbours shared with fp32's, within the cell's batch (higher is better)"),
        Budget("min_spearman_change", -0.01, "--min-spearman-change", "similarity-rank Spearman change ≥ {:g}",
               "Quality budget: least change of the similarity-rank Spearman from fp32's 1", -1.0, 0.0, 0.001, "%.3f",
               "A variant qualifies when the Spearman correlation of all its pairwise similarities with fp32's, minus fp32's own 1, is at "
               "least this (e.g. -0.01; CLI: --min-spearman-change). No labels needed; it catches a reordering a mean cosine hides.",
               schema_range=(-2, 0), valid_min=-2.0, valid_max=0.0,
               cli_help="embedding budget on the similarity-rank Spearman change from fp32 instead of cosine (e.g. -0.01)",
               quantity="similarity-rank Spearman change", metric="similarity_spearman", offset=1.0,
               cell_metric="out_similarity_spearman", cell_name="similarity ranks", cell_fmt=".4f", on_cell=lambda b: 1.0 + float(b),
               cell_axis="Spearman of the cell's pairwise similarities with fp32's (higher is better)"),
    ),
    axis=Axis("Cosine fidelity to fp32 (higher is better)"),
    output_name="last_hidden_state",
    snippet_output="embeddings",
    model_class="AutoModel",
    table_columns=(Column("spearman", "spearman", only_if_measured=True), Column("similarity_spearman", "sim. ranks", only_if_measured=True)),
    pooled=True,
    also_from=("classification",),          # a classifier's encoder gives sentence embeddings too
    example="A man is playing a guitar.\nSomeone plays an instrument.\nThe cat sleeps on the sofa.\nStock markets fell sharply today.",
)
