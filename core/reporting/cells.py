"""One latency cell and one generation cell, each field declared once (see core/reporting/fields.py)."""

from __future__ import annotations

from dataclasses import dataclass

from .fields import CSV_CHECK as C
from .fields import CSV_GENERATION as G
from .fields import MAX_TEXT, integer, known, num, plain_fields, spec, text

MS = num(0, 1e9)


@dataclass
class LatencyCell:
    """End-to-end latency of one batch size x sequence length (core.measure.bench): tokenization included, over the runs."""

    batch_size: int = spec(integer(1, 100_000), unit="texts", csv=4, required=True, doc="texts per call")
    seq_len: int = spec(integer(1, 1_000_000), unit="tokens", csv=5, required=True, doc="tokens per text")
    p50_ms: float = spec(MS, unit="ms", csv=6, doc="median end-to-end latency")
    p90_ms: float = spec(MS, unit="ms", csv=7, doc="90th percentile")
    p99_ms: float = spec(MS, unit="ms", csv=8, doc="99th percentile")
    mean_ms: float = spec(MS, unit="ms", csv=9, doc="mean")
    std_ms: float = spec(MS, unit="ms", csv=10, doc="standard deviation")
    throughput_per_s: float = spec(num(0, 1e12), unit="texts/s", csv=11, doc="batch size / mean latency")
    forward_p50_ms: float = spec(MS, unit="ms", csv=12, doc="median of the model call alone (no tokenization)")
    forward_mean_ms: float | None = spec(MS, unit="ms", default=None, doc="mean of the model call alone")
    iterations: int | None = spec(integer(0, 10**9, null=True), unit="runs", default=None, doc="timed runs")
    # the cell's own outputs against fp32's on the same inputs (core.measure.cell_check); absent in older reports
    out_cosine_mean: float | None = spec(num(-1, 1), csv=C, default=None, doc="embeddings: mean cosine to fp32's, on this cell's inputs")
    out_cosine_min: float | None = spec(num(-1, 1), csv=C + 1, default=None, doc="embeddings: the lowest cosine to fp32's of the cell's texts")
    out_agreement: float | None = spec(num(0, 1), csv=C + 2, default=None,
                                       doc="classification: labels equal to fp32's; causal LMs: top-1 next tokens equal to fp32's")
    out_max_logit_diff: float | None = spec(num(0, 1e15), csv=C + 3, default=None, doc="classification: the largest logit difference from fp32's")
    out_kl_mean: float | None = spec(num(0, 1e6), unit="nats", csv=C + 4, default=None,
                                     doc="causal LMs: mean KL divergence of fp32's next-token distribution from the variant's")
    out_kl_max: float | None = spec(num(0, 1e6), unit="nats", csv=C + 5, default=None, doc="causal LMs: the largest of those")
    out_wrong: bool | None = spec({"type": ["boolean", "null"]}, csv=C + 6, default=None,
                                  doc="the cell's outputs break the quality budget (None: not checked, e.g. fp32 or an older report)")
    out_retrieval_agreement: float | None = spec(num(0, 1), csv=C + 7, default=None,
                                                 doc="embeddings, a batch of 8 texts or more: top-5 neighbours within it shared with fp32's")
    out_similarity_spearman: float | None = spec(num(-1.001, 1.001), csv=C + 8, default=None,
                                                 doc="embeddings, a batch of 8 texts or more: Spearman of its pairwise similarities with fp32's")

    @property
    def checked(self) -> bool:
        return any(getattr(self, k) is not None for k in ("out_cosine_mean", "out_agreement", "out_kl_mean"))

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyCell":
        return cls(**known(cls, d))

    def to_dict(self) -> dict:
        return plain_fields(self)


@dataclass
class GenerationCell:
    """Greedy generation at one batch size and prompt length (core.measure.generation): time to the first token (prompt
    tokenized and prefilled, first token chosen), then milliseconds per further token, and generated tokens per second
    over the whole generation (first token included)."""

    batch_size: int = spec(integer(1, 100_000), unit="prompts", csv=4, required=True, doc="prompts per call")
    prompt_len: int = spec(integer(1, 1_000_000), unit="tokens", csv=G, required=True, doc="tokens per prompt")
    new_tokens: int = spec(integer(1, 1_000_000), unit="tokens", csv=G + 1, required=True, doc="tokens generated per prompt")
    ttft_ms: float = spec(MS, unit="ms", csv=G + 2, doc="time to the first token, median over runs")
    decode_ms_per_token_p50: float = spec(MS, unit="ms/token", csv=G + 3, doc="median time of each further token")
    decode_ms_per_token_p90: float = spec(MS, unit="ms/token", csv=G + 4, doc="90th percentile of each further token")
    tokens_per_s: float = spec(num(0, 1e12), unit="tokens/s", csv=G + 5, doc="generated tokens / whole generation time")
    kv_cache: bool = spec({"type": "boolean"}, csv=G + 6, doc="decoded with a KV cache (else the whole sequence each token)")
    ttft_p90_ms: float | None = spec(MS, unit="ms", default=None, doc="time to the first token, 90th percentile")
    runs: int | None = spec(integer(0, 10**9, null=True), unit="runs", default=None, doc="timed generations")
    sample: str | None = spec(text(MAX_TEXT, null=True), default=None, doc="the first prompt's continuation, as text")
    # the next-token distributions of its last timed run against fp32's, at the steps whose inputs are fp32's (core.measure.cell_check)
    out_agreement: float | None = spec(num(0, 1), csv=C + 2, default=None, doc="top-1 next tokens equal to fp32's at those steps")
    out_kl_mean: float | None = spec(num(0, 1e6), unit="nats", csv=C + 4, default=None,
                                     doc="mean KL divergence of fp32's next-token distribution from the variant's at those steps")
    out_kl_max: float | None = spec(num(0, 1e6), unit="nats", csv=C + 5, default=None, doc="the largest of those")
    out_wrong: bool | None = spec({"type": ["boolean", "null"]}, csv=C + 6, default=None,
                                  doc="the cell's outputs break the quality budget (None: not checked, e.g. fp32 or an older report)")
    out_positions: int | None = spec(integer(0, 10**9, null=True), csv=C + 9, default=None,
                                     doc="steps x prompts compared: each row's first step, and the next while its tokens equal fp32's")

    @property
    def checked(self) -> bool:
        return self.out_kl_mean is not None

    @classmethod
    def from_dict(cls, d: dict) -> "GenerationCell":
        return cls(**known(cls, d))

    def to_dict(self) -> dict:
        return plain_fields(self)


def timed_cells(result) -> list:
    """Every timed cell of a result (a VariantResult) whose outputs can be checked: its latency cells, then its
    generation cells."""
    return [*result.latency, *result.generation]


def length(cell) -> int:
    """A latency cell's sequence length, a generation cell's prompt length."""
    return cell.seq_len if isinstance(cell, LatencyCell) else cell.prompt_len
