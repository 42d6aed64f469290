"""Causal language models: next-token logits, judged by perplexity on raw text (and greedy generation)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .base import Axis, Budget, Column, Task, signed
from .dataset import Dataset, need_columns, text_rows


@dataclass(frozen=True, eq=False)
class CausalLMTask(Task):
    def quality_delta(self, quality, ref_quality):
        value, ref = quality.get(self.primary), ref_quality.get(self.primary)
        if value is None or ref is None:
            return None, ""
        return (value / ref - 1.0) * 100.0 if ref else None, "%"

    def delta_words(self, delta):
        return "" if delta is None else f"{signed(delta, 1)}% perplexity"

    def delta_cell(self, delta):
        return "-" if delta is None else f"{signed(delta, 1)}%"

    def derived_quality(self, quality, ref_quality):
        if not ref_quality.get("perplexity"):
            return {}
        return {"perplexity_increase_pct": (quality["perplexity"] / ref_quality["perplexity"] - 1.0) * 100.0}

    def check_budget(self, quality, ref_quality, limit):
        ppl, ref = quality.get("perplexity"), ref_quality.get("perplexity")
        if ppl is None or not ref:
            return None, "no perplexity"
        inc = (ppl / ref - 1.0) * 100.0
        ok = inc <= limit + 1e-9
        return ok, f"perplexity {ppl:.3f} ({signed(inc, 1)}% vs fp32's {ref:.3f}), {'within' if ok else 'beyond'} the {limit:g}% budget"

    def budget_line(self, limit, ref, percent):
        if not ref:
            return None
        inc = float(limit)
        return float(ref) * (1 + inc / 100), f"perplexity ≤ fp32 + {inc:g}%"

    def read_table(self, columns, rows, name):
        # rows of a text column, joined as paragraphs
        need_columns(columns, ("text",), name, self.name, "give a text column, or a plain .txt file")
        texts = text_rows(rows, name)
        return Dataset(name, self.name, texts, raw_text="\n\n".join(texts), columns=columns, rows=len(texts))

    def read_text(self, text, name):
        raw = text.strip("\n")
        paragraphs = [p.strip() for p in raw.split("\n\n") if p.strip()]
        if len(paragraphs) < 2:
            paragraphs = [line.strip() for line in raw.split("\n") if line.strip()]
        return Dataset(name, self.name, paragraphs, raw_text=raw, columns=[], rows=len(paragraphs))

    def preview_rows(self, dataset, limit):
        return [{"paragraph": t[:300] + ("…" if len(t) > 300 else "")} for t in dataset.texts[:limit]]

    def onnx_snippet_tail(self, run, d):
        if "position_ids" in d["input_names"]:   # a decoder with a KV cache: position ids, and an empty past for a whole-text pass
            return [
                'feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": np.broadcast_to(np.arange(ids.shape[1]), ids.shape).copy()}',
                "for i in session.get_inputs():  # past.N.key/value [batch, kv_heads, past_len, head_dim]; generation feeds back present.N.*",
                '    if i.name.startswith("past."):',
                "        feeds[i.name] = np.zeros((len(ids), i.shape[1], 0, i.shape[3]), dtype=np.float32)",
                f'logits = session.run(["{d["output_name"]}"], feeds)[0]',
                "print([tok.decode([int(row[n - 1].argmax())]) for row, n in zip(logits, mask.sum(1))])  # each text's next token",
            ]
        return [
            f"logits = {run}",
            "print([tok.decode([int(row[n - 1].argmax())]) for row, n in zip(logits, mask.sum(1))])  # each text's next token",
        ]

    def torch_snippet_tail(self, forward):
        return [
            f"    logits = {forward}.float()",
            'print([tok.decode(row[n - 1].argmax()) for row, n in zip(logits, enc["attention_mask"].sum(1))])  # each text\'s next token',
        ]

    def output_shape(self, config, labels):
        return ["batch", "sequence", getattr(config, "vocab_size", None) or "vocab"]

    def postprocessing(self, labels):
        return {"description": "logits over the vocabulary at every position; the next token after a text is the argmax at its last real position.",
                "next_token": "argmax of logits at the last position where attention_mask is 1"}


KL_AXIS = "Mean KL divergence from fp32, nats (lower is better)"

TASK = CausalLMTask(
    name="causal-lm",
    title="causal LM (perplexity, generation)",
    sample_file="causal_lm.txt",
    calibration_file="causal_lm.txt",
    columns=("a .txt file", "text"),
    primary="perplexity", primary_label="perplexity", higher_is_better=False,
    metrics={"perplexity": (0, 1e12), "nll_per_token": (-1e6, 1e6), "token_accuracy": (0, 1), "tokens": (0, 1e12), "windows": (0, 1e12),
             "context": (0, 1e9), "stride": (0, 1e9), "top1_agreement": (0, 1), "perplexity_increase_pct": (-100, 1e12),
             # llama-perplexity --kl-divergence's statistics against fp32 (core/measure/kl_stats.py)
             "kl_mean": (0, 1e6), "kl_p99": (0, 1e6), "kl_max": (0, 1e6), "dp_mean": (-1, 1), "dp_rms": (0, 1), "kl_tokens": (0, 1e12)},
    budget=Budget("max_ppl_increase", 2.0, "--max-ppl-increase", "perplexity increase ≤ {:g}%",
                  "Quality budget: maximum perplexity increase (%)", 0.0, 1000.0, 0.5, "%.1f",
                  "A variant qualifies when its perplexity is at most this many percent above fp32's (CLI: --max-ppl-increase).",
                  schema_range=(0, 1e6), valid_max=float("inf"), cli_help="causal-lm budget: perplexity increase in percent (default 2.0)",
                  # a cell's mean KL of ln(1 + budget) nats is the cross-entropy a budget-sized perplexity increase adds on fp32's own predictions
                  quantity="perplexity increase", cell_metric="out_kl_mean", cell_name="KL", cell_fmt=".4f", cell_unit=" nats",
                  cell_higher=False, on_cell=lambda b: math.log1p(float(b) / 100.0), cell_axis=KL_AXIS),
    budgets=(
        Budget("max_kl_mean", 0.01, "--max-kl-mean", "mean KL divergence ≤ {:g} nats",
               "Quality budget: maximum mean KL divergence from fp32 (nats)", 0.0, 10.0, 0.001, "%.4f",
               "A variant qualifies when the mean KL divergence of fp32's next-token distributions from its own, over the perplexity "
               "windows, is at most this (llama-perplexity --kl-divergence's statistic; CLI: --max-kl-mean).",
               schema_range=(0, 1e6), valid_max=float("inf"),
               cli_help="causal-lm budget on the mean KL divergence from fp32 in nats instead of perplexity (e.g. 0.01)",
               quantity="mean KL divergence", metric="kl_mean", higher=False,
               cell_metric="out_kl_mean", cell_name="KL", cell_fmt=".4f", cell_unit=" nats", cell_higher=False, cell_axis=KL_AXIS),
        Budget("min_top1_agreement", 0.9, "--min-top1-agreement", "top-1 agreement ≥ {:g}",
               "Quality budget: minimum share of next tokens equal to fp32's", 0.0, 1.0, 0.01, "%.2f",
               "A variant qualifies when at least this share of its most likely next tokens equal fp32's over the perplexity windows "
               "(CLI: --min-top1-agreement).",
               schema_range=(0, 1), valid_max=1.0, cli_help="causal-lm budget on top-1 next-token agreement with fp32 instead of perplexity (e.g. 0.9)",
               quantity="top-1 agreement", metric="top1_agreement", cell_metric="out_agreement", cell_name="top-1 agreement", cell_fmt=".0%",
               cell_axis="Top-1 next tokens equal to fp32's on the cell's inputs (higher is better)"),
    ),
    axis=Axis("Perplexity (lower is better)"),
    output_name="logits",
    snippet_output="logits",
    model_class="AutoModelForCausalLM",
    table_columns=(Column("token_accuracy", "next-token acc", percent=True), Column("top1_agreement", "top-1 = fp32", percent=True),
                   Column("kl_mean", "KL mean", only_if_measured=True), Column("kl_p99", "KL p99", only_if_measured=True),
                   Column("dp_rms", "RMS Δp", percent=True, only_if_measured=True)),
    generates=True,
    example="Return a new list containing",
)
