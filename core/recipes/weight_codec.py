"""Round-to-nearest int8 and int4 weights, to a file and back: absmax (symmetric) and zero-point (asymmetric). Shared by
the weight-only family (its recipes) and the PyTorch family (torchao-int8 stores its weights this way), so neither
imports the other.

Formulas, with ``qmax = 2**(bits-1) - 1`` (127 at 8 bits, 7 at 4 bits) and ``levels = 2**bits - 1`` (255, 15):

* absmax:     scale = qmax / max|W|;                q = round(W * scale);                       W' = q / scale
* zero-point: scale = levels / (max - min);         zp = round(-scale * min) - 2**(bits-1);
              q = clip(round(W * scale + zp), -2**(bits-1), qmax);                                 W' = (q - zp) / scale

One scale per tensor (``granularity=tensor``), per output channel (``channel``: rows of a [out, in] weight)
or per group of ``group_size`` consecutive input weights of a row (``group``, as GPTQ/AWQ/GGUF do). For
zero-point the range is widened to include 0 (as ONNX Runtime and PyTorch do), so 0 stays exact and the
zero point fits the integer range; for real weights, whose rows and groups span 0, that changes nothing.

The artifact keeps ``q`` plus float32 scales and integer zero points in safetensors, so its size shows the
saving. At 4 bits ``q`` and the zero points are truly packed, two values per byte (see :func:`pack_int4`).
At load the weights are dequantized to float32 for the matmuls.
By default only Linear / GPT-2 Conv1D weights are quantized; ``scope=all`` quantizes every
floating-point parameter (LayerNorms, embeddings, biases), the common mistake, to show its cost.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..inputs.sources import skeleton
from .base import BuildContext, read_json, write_json
from .torch_common import save_state, tied_output_names

EPS = 1e-12
GRANULARITIES = ("tensor", "channel", "group")
GROUP_SIZES = ("32", "64", "128")


def _rows(w):
    """[rows, cols] view of a weight: rows are output channels for a matrix, one row for a vector."""
    return w.reshape(w.shape[0], -1) if w.dim() >= 2 else w.reshape(1, -1)


def _grouped(flat, group_size: int):
    """[rows, cols] -> [rows, groups, group_size], the last group padded by repeating its last value (min/max unchanged)."""
    import torch

    rows, cols = flat.shape
    groups = math.ceil(cols / group_size)
    pad = groups * group_size - cols
    if pad:
        flat = torch.cat([flat, flat[:, -1:].expand(rows, pad)], dim=1)
    return flat.reshape(rows, groups, group_size)


def quantize_tensor(w, scheme: str, granularity: str, bits: int = 8, group_size: int = 32):
    """Return (q int8 of w's shape, scale float32, zero_point int8 or None).

    The scale has shape [1] per tensor, [rows] per channel, [rows, groups] per group (rows of a [out, in] weight).
    """
    import torch

    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    w = w.detach().float()
    qmax, qmin, levels = 2 ** (bits - 1) - 1, -(2 ** (bits - 1)), 2 ** bits - 1
    if granularity == "group":
        blocks = _grouped(_rows(w), int(group_size))            # [rows, groups, gs]
    elif granularity == "channel" and w.dim() >= 2:
        blocks = _rows(w)[:, None, :]                            # [rows, 1, cols]
    elif granularity in ("tensor", "channel"):
        blocks = w.reshape(1, 1, -1)                             # [1, 1, n]
    else:
        raise ValueError(f"unknown granularity {granularity}")
    if scheme == "absmax":
        scale = qmax / blocks.abs().amax(dim=2).clamp_min(EPS)
        q = torch.round(blocks * scale[..., None]).clamp(-qmax, qmax)
        zp = None
    elif scheme == "zeropoint":
        lo, hi = blocks.amin(dim=2).clamp(max=0.0), blocks.amax(dim=2).clamp(min=0.0)
        scale = levels / (hi - lo).clamp_min(EPS)
        zp = (torch.round(-scale * lo) + qmin).clamp(qmin, qmax)
        q = torch.clamp(torch.round(blocks * scale[..., None] + zp[..., None]), qmin, qmax)
    else:
        raise ValueError(f"unknown scheme {scheme}")
    rows = blocks.shape[0]
    if granularity == "group":  # drop the padding of the last group
        q = q.reshape(rows, -1)[:, : _rows(w).shape[1]]
    q = q.reshape(w.shape).to(torch.int8)
    shape = (rows, blocks.shape[1]) if granularity == "group" else (rows,)
    return q, scale.reshape(shape).float(), (zp.reshape(shape).to(torch.int8) if zp is not None else None)


def dequantize_tensor(q, scale, zp=None, group_size: int | None = None):
    """W' = (q - zp) / scale, with the scale (and zero point) per tensor, row, or group of ``group_size`` in a row."""
    if scale.dim() == 2:  # per group
        rows, groups = scale.shape
        flat = q.float().reshape(rows, -1)
        cols = flat.shape[1]
        size = int(group_size or math.ceil(cols / groups))
        blocks = _grouped(flat, size)
        if zp is not None:
            blocks = blocks - zp.float()[..., None]
        return (blocks / scale[..., None]).reshape(rows, -1)[:, :cols].reshape(q.shape)
    rows = scale.numel()
    flat = q.float().reshape(rows, -1) if rows > 1 else q.float().reshape(1, -1)
    if zp is not None:
        flat = flat - zp.float().reshape(-1, 1)
    return (flat / scale.reshape(-1, 1)).reshape(q.shape)


def pack_int4(values):
    """Signed 4-bit values (an int8 tensor in [-8, 7], any shape) -> uint8, two per byte: element 2i in the low
    nibble, 2i+1 in the high nibble (two's complement nibbles, the ONNX INT4 layout); odd lengths get a zero pad."""
    import torch

    flat = values.reshape(-1).to(torch.int16)
    if flat.numel() and (int(flat.min()) < -8 or int(flat.max()) > 7):
        raise ValueError("pack_int4 takes values in [-8, 7]")
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    nibbles = flat & 0xF
    return (nibbles[0::2] | (nibbles[1::2] << 4)).to(torch.uint8)


def unpack_int4(packed, shape) -> "object":
    """Inverse of :func:`pack_int4`: uint8 bytes -> int8 tensor of ``shape``."""
    import torch

    shape = tuple(int(d) for d in shape)
    count = math.prod(shape)
    b = packed.reshape(-1).to(torch.int16)
    nibbles = torch.stack([b & 0xF, (b >> 4) & 0xF], dim=1).reshape(-1)[:count]
    return torch.where(nibbles >= 8, nibbles - 16, nibbles).to(torch.int8).reshape(shape)


def target_weights(model, scope: str = "linear") -> dict[str, tuple[str, bool]]:
    """{parameter name: (kind, transposed)} to quantize. Conv1D weights are [in, out], so transposed."""
    import torch
    from transformers.pytorch_utils import Conv1D

    if scope == "all":
        out = {}
        for name, p in model.named_parameters():  # named_parameters already drops tied duplicates
            out[name] = ("param", False)
        return out
    tied = tied_output_names(model)
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name not in tied:
            out[f"{name}.weight"] = ("linear", False)
        elif isinstance(mod, Conv1D):
            out[f"{name}.weight"] = ("conv1d", True)
    return out


def quantize_model_weights(model, scheme: str, granularity: str, scope: str = "linear", bits: int = 8, group_size: int = 32) -> dict:
    """{param name: (q, scale, zp, transposed)} for every target weight of ``model``."""
    params = dict(model.named_parameters())
    result = {}
    for name, (_, transposed) in target_weights(model, scope).items():
        w = params[name].detach()
        w = w.t() if transposed else w
        q, scale, zp = quantize_tensor(w, scheme, granularity, bits, group_size)
        result[name] = (q, scale, zp, transposed)
    return result


def weight_tensors(name: str, q, scale, zp, bits: int) -> dict:
    """The safetensors entries of one quantized weight: int8 ``.q`` at 8 bits, packed ``.q4`` (and ``.zp4``) at 4."""
    if bits == 4:
        out = {f"{name}.q4": pack_int4(q), f"{name}.scale": scale}
        if zp is not None:
            out[f"{name}.zp4"] = pack_int4(zp)
        return out
    out = {f"{name}.q": q, f"{name}.scale": scale}
    if zp is not None:
        out[f"{name}.zp"] = zp
    return out


def read_weight(tensors: dict, name: str, info: dict):
    """(q int8, scale, zp or None) of one weight from an artifact's tensors (either bit width; old artifacts too)."""
    scale = tensors[f"{name}.scale"]
    if f"{name}.q4" in tensors:
        q = unpack_int4(tensors[f"{name}.q4"], info["shape"])
        zp = unpack_int4(tensors[f"{name}.zp4"], scale.shape) if f"{name}.zp4" in tensors else None
        return q, scale, zp
    return tensors[f"{name}.q"], scale, tensors.get(f"{name}.zp")


QUANT_SUFFIXES = (".q", ".q4", ".scale", ".zp", ".zp4")


def quantize_weights_to_file(ctx: BuildContext, out: Path, scheme: str, granularity: str, scope: str = "linear",
                             bits: int = 8, group_size: int = 32) -> dict:
    model = ctx.loaded().model
    where = f"groups of {group_size}" if granularity == "group" else f"{granularity} granularity"
    ctx.say(0.3, f"{scheme} int{bits} on {where}")
    quantized = quantize_model_weights(model, scheme, granularity, scope, bits, group_size)
    tensors = {}
    for name, (q, scale, zp, _) in quantized.items():
        tensors.update(weight_tensors(name, q, scale, zp, bits))
    params = dict(model.named_parameters())
    quantized_ptrs = {params[n].data_ptr() for n in quantized}
    for name, value in model.state_dict().items():
        if name not in quantized and value.data_ptr() not in quantized_ptrs:  # skip tied aliases
            tensors[name] = value
    save_state(out / "weights.safetensors", tensors)
    write_json(out / "quantized.json", {"scheme": scheme, "granularity": granularity, "scope": scope, "bits": bits,
                                        "group_size": group_size if granularity == "group" else None,
                                        "weights": {n: {"transposed": t, "shape": list(q.shape)} for n, (q, _, _, t) in quantized.items()}})
    return {"quantized_weights": len(quantized)}


def load_dequantized(ctx: BuildContext, art: Path):
    """Rebuild the fp32 model from a weight-only artifact: int8/int4 * scales -> float32 weights."""
    from safetensors.torch import load_file

    meta = read_json(art / "quantized.json")
    tensors = load_file(str(art / "weights.safetensors"))
    model = skeleton(ctx.source)
    state = {k: v for k, v in tensors.items() if not k.endswith(QUANT_SUFFIXES)}
    for name, info in meta["weights"].items():
        q, scale, zp = read_weight(tensors, name, info)
        w = dequantize_tensor(q, scale, zp, meta.get("group_size"))
        state[name] = w.t().contiguous() if info["transposed"] else w
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise RuntimeError(f"artifact has weights the model does not: {unexpected[:3]}")
    model.tie_weights()
    return model.eval()
