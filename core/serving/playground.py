"""Side-by-side helpers for the Playground and Weights pages, over any :class:`~core.recipes.Variant`.

Everything goes through ``variant(input_ids, attention_mask) -> np.float32`` so ONNX Runtime variants work
the same as torch ones: generation is a greedy / top-k sampling loop over the logits, one token at a time through the
variant's KV-cache decoder (core.recipes.decoders; a variant without a cache re-runs the whole sequence), classification is a softmax
over the logits, similarity is mean pooling + cosine.

Loading here never builds: a variant that is not in the store yet is built by a ``build`` job
(``core.serving.jobs``), so a page never does heavy work in its script run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import QlabError
from ..tasks import REGISTRY

MAX_PROMPT_CHARS = 2000
MAX_NEW_TOKENS = 200
MAX_TEXTS = 12


# -- readiness (no building) ---------------------------------------------------------------------
def bundled_needs_build(name: str) -> bool:
    """True for a bundled model that is trained on first use and has not been trained yet."""
    from ..bundled import BUNDLED, bundled_path

    model = BUNDLED.get(name)
    if model is None or model.packaged_path is not None:
        return False
    return bundled_path(name, build=False) is None


def hub_not_downloaded(name: str) -> bool:
    """True for a hub id that is not in the local Hugging Face cache (resolving it would download it)."""
    from ..access import hosting
    from ..bundled import BUNDLED
    from ..inputs.sources import HUB_ID

    name = (name or "").strip()
    if not name or name in BUNDLED or hosting.looks_local(name) or not HUB_ID.match(name):
        return False
    from ..inputs.sources import cached_hub_snapshot

    return cached_hub_snapshot(name, None) is None   # neither in the store's hub folder nor the user's HF cache


def resolve_ready(name: str, task: str | None = None, *, allow_local: bool = True):
    """Resolve a model without training, building or downloading anything; raises QlabError if a job must fetch or build it first."""
    from ..inputs.sources import resolve

    if hub_not_downloaded(name):
        raise QlabError(f"'{name}' is not downloaded yet: the first comparison with it downloads it in the background (Run page).")
    if bundled_needs_build(name):
        raise QlabError(f"'{name}' is trained on first use and has not been built yet; "
                        "build it in the background with the button below (or run a comparison with it).")
    return resolve(name, task, allow_local=allow_local)


def stored_variants(source, specs: list[str]) -> dict[str, bool]:
    from ..engine.variants import is_stored
    from ..storage.store import ModelStore

    store = ModelStore()
    out = {}
    for spec in specs:
        try:
            out[spec] = is_stored(source, spec, store)
        except QlabError:
            out[spec] = False
    return out


@dataclass
class Ready:
    source: object
    variant: object       # core.recipes.Variant
    tokenizer: object
    load_s: float


def load_stored(source, spec: str, *, device: str = "cpu", threads: int | None = None) -> Ready:
    """Load a variant that is already in the store (QlabError if it is not: build it with a job first)."""
    from ..engine.variants import get_variant, is_stored
    from ..inputs.sources import load_tokenizer
    from ..storage.store import ModelStore

    store = ModelStore()
    if not is_stored(source, spec, store):
        raise QlabError(f"Variant '{spec}' of {source.name} is not built yet; build it in the background first.")
    loaded = get_variant(source, spec, store=store, device=device, threads=threads, build=False)  # verified; never built here; leased while loading only
    return Ready(source=source, variant=loaded.variant, tokenizer=load_tokenizer(source), load_s=loaded.load_s)


# -- generation ------------------------------------------------------------------------------------
def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x - x.max()
    e = np.exp(x)
    return e / e.sum()


def next_token(logits: np.ndarray, *, temperature: float, top_k: int, rng: np.random.Generator) -> int:
    """Greedy when temperature <= 0, else sample from the top-k softmax at that temperature."""
    logits = np.asarray(logits, dtype=np.float64).ravel()
    if temperature <= 0:
        return int(np.argmax(logits))
    k = max(1, min(int(top_k or len(logits)), len(logits)))
    top = np.argpartition(-logits, k - 1)[:k]
    top = top[np.argsort(-logits[top], kind="stable")]
    probs = _softmax(logits[top] / temperature)
    return int(top[rng.choice(len(top), p=probs)])


def generate(variant, tokenizer, prompt: str, *, max_new_tokens: int = 40, temperature: float = 0.0, top_k: int = 40,
             seed: int = 0, max_positions: int | None = None) -> dict:
    """Continue ``prompt`` with ``variant`` (a causal LM: ids -> logits [B, T, V]); same seed -> same samples."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise QlabError("Type a prompt to continue.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise QlabError(f"The prompt is {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS}.")
    max_new_tokens = max(1, min(int(max_new_tokens), MAX_NEW_TOKENS))
    ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if not ids:
        raise QlabError("The prompt has no tokens the model knows; type some words.")
    if max_positions:   # prompt + new tokens must fit the model: keep the prompt's end
        max_new_tokens = min(max_new_tokens, max(1, max_positions // 2))
        ids = ids[-(max_positions - max_new_tokens):]
    eos = getattr(tokenizer, "eos_token_id", None)
    rng = np.random.default_rng(int(seed))
    decoder = variant.new_decoder()   # the variant's KV cache, or a re-run of the whole sequence per token
    new: list[int] = []
    started = time.perf_counter()
    logits = decoder.start(np.asarray([ids], dtype=np.int64))
    first = None
    for _ in range(max_new_tokens):
        token = next_token(logits[0], temperature=temperature, top_k=top_k, rng=rng)
        first = first if first is not None else time.perf_counter() - started
        new.append(token)
        if (eos is not None and token == eos) or len(new) == max_new_tokens:
            break
        logits = decoder.step(np.asarray([token], dtype=np.int64))
    seconds = time.perf_counter() - started
    decode = (seconds - first) / (len(new) - 1) if len(new) > 1 else None
    return {"prompt": prompt, "text": tokenizer.decode(new, skip_special_tokens=True), "tokens": new, "seconds": seconds,
            "tokens_per_s": len(new) / seconds if seconds > 0 else float("inf"), "ttft_s": first, "decode_ms_per_token": decode * 1000 if decode else None,
            "kv_cache": bool(decoder.kv_cache)}


def first_divergence(a: list[int], b: list[int]) -> int | None:
    """Index of the first generated token where two runs differ (None if one is a prefix of the other)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None


# -- classification and similarity ---------------------------------------------------------------
def _texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = texts.split("\n")
    out = [t.strip() for t in texts if t and t.strip()]
    if not out:
        raise QlabError("Type at least one sentence (one per line).")
    if len(out) > MAX_TEXTS:
        raise QlabError(f"{len(out)} sentences given; the playground takes up to {MAX_TEXTS}.")
    return out


def _encode(tokenizer, texts: list[str], max_length: int):
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


def classify(variant, tokenizer, texts, labels: list[str], max_length: int = 128) -> list[dict]:
    """Per text: predicted label, its probability, and every label's probability."""
    texts = _texts(texts)
    ids, mask = _encode(tokenizer, texts, max_length)
    logits = np.asarray(variant(ids, mask), dtype=np.float64)
    out = []
    for text, row in zip(texts, logits):
        probs = _softmax(row)
        names = labels if len(labels) == len(probs) else [f"LABEL_{i}" for i in range(len(probs))]
        best = int(np.argmax(probs))
        out.append({"text": text, "label": names[best], "confidence": float(probs[best]),
                    "probs": {n: float(p) for n, p in zip(names, probs)}})
    return out


def embed(variant, tokenizer, texts, max_length: int = 128) -> np.ndarray:
    from ..measure.metrics import mean_pool

    texts = _texts(texts)
    ids, mask = _encode(tokenizer, texts, max_length)
    return mean_pool(np.asarray(variant(ids, mask)), mask)


def similarity_matrix(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    return x @ x.T


def run_task(task: str, variant, tokenizer, text: str, *, labels=None, max_length: int = 128, **gen) -> dict:
    """The playground's one call: generation, classification or similarity, by what the task's outputs are."""
    t = REGISTRY.get(task)
    if t is None:
        raise QlabError(f"Unknown task '{task}'.")
    if t.generates:
        return generate(variant, tokenizer, text, **gen)
    if t.has_labels:
        return {"rows": classify(variant, tokenizer, text, labels or [], max_length)}
    texts = _texts(text)   # sentence vectors: their similarities
    if len(texts) < 2:
        raise QlabError("Type at least two sentences (one per line) to compare their similarity.")
    return {"texts": texts, "matrix": similarity_matrix(embed(variant, tokenizer, texts, max_length))}


# -- weights inspection (the Weights page) -------------------------------------------------------------
def load_reference(source):
    """The fp32 model of a resolved source (for looking at its weights)."""
    from ..inputs.sources import load_model

    return load_model(source).model


def weight_layers(model) -> list[str]:
    """Names of the weights that weight-only int8 quantizes (Linear / Conv1D), in model order."""
    from ..recipes.weight_codec import target_weights

    return list(target_weights(model, "linear"))


def _weight(model, name: str):
    from ..recipes.weight_codec import target_weights

    params = dict(model.named_parameters())
    if name not in params:
        raise QlabError(f"The model has no weight '{name}'.")
    w = params[name].detach().float()
    transposed = target_weights(model, "linear").get(name, ("", False))[1]
    return w.t() if transposed else w


def round_trip(model, name: str, scheme: str, granularity: str, bits: int = 8, group_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(original, dequantized) values of one weight at ``bits`` (8 or 4), as float32 arrays of the same shape."""
    from ..recipes.weight_codec import dequantize_tensor, quantize_tensor

    w = _weight(model, name)
    q, scale, zp = quantize_tensor(w, scheme, granularity, bits, group_size)
    return w.numpy().astype(np.float32), dequantize_tensor(q, scale, zp, group_size).numpy().astype(np.float32)


def relative_error(original: np.ndarray, dequantized: np.ndarray) -> float:
    num = float(np.linalg.norm((dequantized - original).ravel()))
    den = float(np.linalg.norm(original.ravel()))
    return num / den if den else 0.0


def layer_errors(model, scheme: str, bits: int = 8, group_size: int = 32) -> list[dict]:
    """Per quantizable layer: relative error ||W' - W|| / ||W|| at ``bits`` with per-tensor, per-channel and per-group scales."""
    rows = []
    for name in weight_layers(model):
        row = {"layer": name}
        for granularity in ("tensor", "channel", "group"):
            w, dq = round_trip(model, name, scheme, granularity, bits, group_size)
            row[granularity] = relative_error(w, dq)
        row["shape"] = "x".join(str(d) for d in _weight(model, name).shape)
        rows.append(row)
    return rows


def short_layer_name(name: str) -> str:
    """'bert.encoder.layer.3.attention.self.query.weight' -> 'L3 attention.self.query'."""
    parts = name.split(".")
    if parts and parts[-1] == "weight":
        parts = parts[:-1]
    for i, p in enumerate(parts):
        if p.isdigit() and i > 0:
            return f"L{p} " + ".".join(parts[i + 1:])
    return ".".join(parts[-2:])
