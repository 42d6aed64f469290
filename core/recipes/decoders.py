"""Token-by-token decoding of a causal LM variant: a prompt in, next-token logits out, one new token at a time.

Three decoders, one interface (``start(prompt ids) -> logits``, ``step(new tokens) -> logits``, both ``[batch, vocab]``
float32 numpy):

- :class:`TorchCacheDecoder`: a transformers model with its own KV cache (``DynamicCache``); each step feeds one token.
- :class:`OnnxCacheDecoder`: an ONNX decoder graph exported with past key/values as inputs and present key/values as
  outputs (:func:`core.recipes.export_graph.decoder_with_past`); each step feeds one token and the last presents.
- :class:`RecomputeDecoder`: any variant without a cache (a TorchScript trace, an ONNX graph without past inputs):
  every step runs the whole sequence again. Generation results say ``kv_cache: false`` and the variant's notes say why.

Prompts are unpadded (every row of a batch has the same length), so the attention mask is all ones and position ids
count from 0; the graphs and models still get both, as they would in a padded batch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

PAST = "past."         # ONNX decoder inputs: past.{layer}.key / past.{layer}.value  [batch, kv_heads, past_len, head_dim]
PRESENT = "present."   # ONNX decoder outputs: present.{layer}.key / .value          [batch, kv_heads, total_len, head_dim]
PAST_PREFIXES = (PAST, "past_key_values.")   # the lab's export, and onnxruntime-genai's model builder
POSITIONS = "position_ids"


class Decoder:
    kv_cache = False
    why_no_cache = ""

    def start(self, input_ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def step(self, tokens: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class RecomputeDecoder(Decoder):
    """No cache: the whole sequence (prompt + tokens so far) is run again for every new token."""

    def __init__(self, run: Callable[[np.ndarray, np.ndarray], np.ndarray], why: str):
        self.run, self.why_no_cache, self.ids = run, why, None

    def _last(self) -> np.ndarray:
        return np.asarray(self.run(self.ids, np.ones_like(self.ids))[:, -1], dtype=np.float32)

    def start(self, input_ids):
        self.ids = np.asarray(input_ids, dtype=np.int64)
        return self._last()

    def step(self, tokens):
        self.ids = np.concatenate([self.ids, np.asarray(tokens, dtype=np.int64).reshape(-1, 1)], axis=1)
        return self._last()


class TorchCacheDecoder(Decoder):
    """A transformers causal LM with its KV cache (``DynamicCache``). ``before`` runs before every call (e.g. to pin
    the quantized engine, which is process-global)."""

    kv_cache = True

    def __init__(self, model, device: str = "cpu", before: Callable[[], None] | None = None):
        self.model, self.device, self.before = model, device, before
        self.cache, self.length = None, 0

    def _run(self, ids: np.ndarray) -> np.ndarray:
        import torch

        if self.before:
            self.before()
        with torch.inference_mode():
            ids_t = torch.as_tensor(ids, dtype=torch.long, device=self.device)
            self.length += ids_t.shape[1]
            mask = torch.ones((ids_t.shape[0], self.length), dtype=torch.long, device=self.device)
            out = self.model(input_ids=ids_t, attention_mask=mask, past_key_values=self.cache, use_cache=True)
            return out.logits[:, -1].float().cpu().numpy()

    def start(self, input_ids):
        from transformers import DynamicCache

        self.cache, self.length = DynamicCache(config=self.model.config), 0
        return self._run(np.asarray(input_ids, dtype=np.int64))

    def step(self, tokens):
        return self._run(np.asarray(tokens, dtype=np.int64).reshape(-1, 1))


def past_inputs(session) -> list:
    return [i for i in session.get_inputs() if i.name.startswith(PAST_PREFIXES)]


def present_name(past: str) -> str:
    """past.3.key / past_key_values.3.key -> present.3.key"""
    prefix = next(p for p in PAST_PREFIXES if past.startswith(p))
    return PRESENT + past[len(prefix):]


def has_past(session) -> bool:
    return bool(past_inputs(session))


def empty_past(session, batch: int, head_dim: int | None = None) -> dict:
    """Zero-length past key/values for every layer of an ONNX decoder (the prompt pass of a decoder with past).
    ``head_dim`` is needed only where the graph leaves that axis symbolic."""
    feeds = {}
    for inp in past_inputs(session):
        _, heads, _, dim = inp.shape
        dim = dim if isinstance(dim, int) else head_dim
        if not isinstance(heads, int) or not isinstance(dim, int):
            raise ValueError(f"{inp.name} has shape {inp.shape}: give the key/value head size")
        feeds[inp.name] = np.zeros((batch, heads, 0, dim), dtype=np.float32)
    return feeds


def logits_name(session) -> str:
    names = [o.name for o in session.get_outputs()]
    return "output" if "output" in names else names[0]


def graph_feeds(session, input_ids: np.ndarray, attention_mask: np.ndarray, head_dim: int | None = None) -> dict:
    """Feeds for one whole-sequence pass of any of the lab's graphs: ids and mask, plus position ids and an empty past
    where the graph is a decoder with past key/values (then its first output is the logits of every position)."""
    ids = np.asarray(input_ids, dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.asarray(attention_mask, dtype=np.int64)}
    names = {i.name for i in session.get_inputs()}
    if POSITIONS in names:
        feeds[POSITIONS] = np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape).copy()
    if has_past(session):
        feeds.update(empty_past(session, ids.shape[0], head_dim))
    return {k: v for k, v in feeds.items() if k in names}


class OnnxCacheDecoder(Decoder):
    """An ONNX decoder with past key/values: presents of one call are the pasts of the next."""

    kv_cache = True

    def __init__(self, session, head_dim: int | None = None):
        self.session, self.head_dim = session, head_dim
        self.pasts = [i.name for i in past_inputs(session)]
        self.outputs = [logits_name(session)] + [present_name(n) for n in self.pasts]
        self.positions = POSITIONS in {i.name for i in session.get_inputs()}   # onnxruntime-genai's graphs derive them from the mask
        self.past, self.length = {}, 0

    def _run(self, ids: np.ndarray) -> np.ndarray:
        batch, n = ids.shape
        feeds = {"input_ids": ids, "attention_mask": np.ones((batch, self.length + n), dtype=np.int64), **self.past}
        if self.positions:
            feeds[POSITIONS] = np.broadcast_to(np.arange(self.length, self.length + n, dtype=np.int64), ids.shape).copy()
        logits, *presents = self.session.run(self.outputs, feeds)
        self.past = dict(zip(self.pasts, presents))
        self.length += n
        return np.asarray(logits[:, -1], dtype=np.float32)

    def start(self, input_ids):
        ids = np.asarray(input_ids, dtype=np.int64)
        self.past, self.length = empty_past(self.session, ids.shape[0], self.head_dim), 0
        return self._run(ids)

    def step(self, tokens):
        return self._run(np.asarray(tokens, dtype=np.int64).reshape(-1, 1))
