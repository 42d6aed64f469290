"""Export-friendly attention for encoders, so ONNX Runtime's optimizer recognises and fuses it.

transformers 5 computes attention scores as ``(q @ k^T) * scaling + mask`` with a mask built
from a boolean ``Where``; ONNX Runtime's BERT attention fusion looks for the classic pattern
``(q @ k^T) / sqrt(d) + (1 - mask) * -10000``. Exporting through this attention function and an
additive 4D mask yields that pattern, which fuses into one ``Attention`` op per layer (the same
maths: the masked positions get a large negative score either way).
"""

from __future__ import annotations

import contextlib

NAME = "qlab_export"
MASK_VALUE = -10000.0


def classic_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    import torch

    divisor = query.size(-1) ** 0.5 if scaling is None else 1.0 / scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) / divisor
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.nn.functional.softmax(scores, dim=-1)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


def register() -> str:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, classic_attention)
    return NAME


@contextlib.contextmanager
def classic_attention_for(model):
    """Temporarily run ``model``'s attention through :func:`classic_attention`."""
    register()
    before = model.config._attn_implementation
    model.set_attn_implementation(NAME)
    try:
        yield model
    finally:
        model.set_attn_implementation(before)


def additive_mask(attention_mask):
    """The classic BERT extended mask: 0 where attended, -10000 where padded, shaped [batch, 1, 1, seq]."""
    import torch

    return (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * MASK_VALUE


def additive_encoder_wrapper(model, task: str):
    """forward(input_ids, attention_mask) with the classic additive mask, for encoder exports."""
    from .torch_common import make_wrapper

    return make_wrapper(model, task, mask_transform=additive_mask)


# -- causal LMs: a decoder with past key/values ---------------------------------------------------
def decoder_with_past(model, fill: str = "update"):
    """forward(input_ids, attention_mask, position_ids, past.0.key, past.0.value, ...) -> (logits, present.0.key, ...),
    the model's KV cache as plain tensors, for a decoder that generates one token per call.

    The past is [batch, kv_heads, past_len, head_dim] per layer; a zero-length past makes it a whole-sequence pass
    (the prompt, or perplexity), so one graph serves quality, prefill and decoding. ``fill``: how the pasts enter
    transformers' cache: ``update`` (the ONNX export) or ``assign`` (each layer's keys and values set directly: update
    concatenates onto an empty 1-D tensor, which PyTorch allows and OpenVINO's Concat rejects; the stateful export)."""
    import torch
    from transformers import DynamicCache

    layers = model.config.num_hidden_layers

    def cache_of(past):
        if fill == "update":
            return DynamicCache([(past[2 * i], past[2 * i + 1]) for i in range(layers)], config=model.config)
        cache = DynamicCache(config=model.config)
        for i, layer in enumerate(cache.layers):
            key, value = past[2 * i], past[2 * i + 1]
            layer.lazy_initialization(key, value)
            layer.keys, layer.values = key, value
        return cache

    class DecoderWithPast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, *past):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, past_key_values=cache_of(past),
                             use_cache=True)
            presents = []
            for layer in out.past_key_values.layers:
                presents += [layer.keys, layer.values]
            return (out.logits, *presents)

    return DecoderWithPast().eval()


def kv_shape(config) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a causal LM's KV cache."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


def decoder_example(model, input_ids, past_len: int = 3):
    """Example inputs for tracing :func:`decoder_with_past`: a non-empty past, so the cache's concatenation is traced."""
    import torch

    layers, kv_heads, head_dim = kv_shape(model.config)
    batch, n = input_ids.shape
    past = [torch.zeros(batch, kv_heads, past_len, head_dim) for _ in range(2 * layers)]
    mask = torch.ones(batch, past_len + n, dtype=torch.long)
    positions = torch.arange(past_len, past_len + n).expand(batch, n)
    names = [f"past.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return (input_ids, mask, positions, *past), names
