"""Running the stateful model in the lab: compiled by OpenVINO's CPU plugin, its KV cache kept in the plugin's state.

Perplexity (``run``) is one whole-sequence pass per call on a fresh state; generation is :class:`StatefulDecoder`,
which feeds the prompt once and then one token per step to the same infer request, the way GenAI's stateful pipeline
(``ATTENTION_BACKEND="SDPA"``) drives it: ``input_ids``, an all-ones ``attention_mask`` over the cache and the new
tokens, ``position_ids`` counting on from the cache length, and ``beam_idx`` (the identity: greedy keeps every row).
"""

from __future__ import annotations

import numpy as np

from ..decoders import Decoder
from ..openvino_quiet import openvino

MODEL_XML, MODEL_BIN = "openvino_model.xml", "openvino_model.bin"
DEVICE = "CPU"
PERFORMANCE_HINT = "LATENCY"   # synchronous calls one at a time: one stream on every thread


def compile_stateful(folder, threads: int | None, precision: str, kv_cache: str):
    """The stored model compiled for the CPU plugin in ``precision`` (INFERENCE_PRECISION_HINT), with ``kv_cache``'s
    KV cache precision: "float" the inference precision itself, "u8" the CPU plugin's own default (quantized keys and values)."""
    config = {"PERFORMANCE_HINT": PERFORMANCE_HINT, "INFERENCE_PRECISION_HINT": precision}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if kv_cache == "float":
        config["KV_CACHE_PRECISION"] = precision
    return openvino().Core().compile_model(str(folder / MODEL_XML), DEVICE, config)


def compiled_property(compiled, name: str) -> str:
    """A compiled model's property as words: element types by their short name (f32, bf16, u8)."""
    try:
        value = compiled.get_property(name)
    except RuntimeError:
        return "?"
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def feeds(ids: np.ndarray, mask: np.ndarray, start: int) -> dict:
    """One call's inputs: ``ids`` [batch, n] after ``start`` cached tokens, ``mask`` [batch, start + n]."""
    batch, n = ids.shape
    return {"input_ids": ids, "attention_mask": mask, "position_ids": np.broadcast_to(np.arange(start, start + n, dtype=np.int64), ids.shape).copy(),
            "beam_idx": np.arange(batch, dtype=np.int32)}


def runner(compiled):
    """``run(input_ids, attention_mask) -> logits [batch, seq, vocab]`` float32: one pass on a fresh state per call."""
    request = compiled.create_infer_request()

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids = np.asarray(input_ids, dtype=np.int64)
        request.reset_state()
        out = request.infer(feeds(ids, np.asarray(attention_mask, dtype=np.int64), 0), share_outputs=True)
        return np.array(out["logits"], dtype=np.float32)   # a copy: the request reuses its buffers on the next call

    return run


class StatefulDecoder(Decoder):
    """Greedy decoding on the compiled stateful model: the KV cache is the infer request's state (no past inputs)."""

    kv_cache = True

    def __init__(self, compiled):
        self.request = compiled.create_infer_request()
        self.length = 0

    def _run(self, ids: np.ndarray) -> np.ndarray:
        batch, n = ids.shape
        out = self.request.infer(feeds(ids, np.ones((batch, self.length + n), dtype=np.int64), self.length), share_outputs=True)
        self.length += n
        return np.array(out["logits"][:, -1], dtype=np.float32)

    def start(self, input_ids):
        self.request.reset_state()   # a new prompt: the plugin drops the cache of the last one
        self.length = 0
        return self._run(np.asarray(input_ids, dtype=np.int64))

    def step(self, tokens):
        return self._run(np.asarray(tokens, dtype=np.int64).reshape(-1, 1))
