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
