"""Weight-only round-to-nearest int8: absmax (symmetric) and zero-point (asymmetric).

Formulas (per tensor, or per output channel with ``granularity=channel``):

* absmax:     scale = 127 / max|W|;            q = round(W * scale);                       W' = q / scale
* zero-point: scale = 255 / (max - min);       zp = round(-scale * min) - 128;
              q = clip(round(W * scale + zp), -128, 127);                                   W' = (q - zp) / scale

The artifact keeps the int8 ``q`` plus float32 scales (and zero points) in safetensors, so its size
shows the saving; at load the weights are dequantized to float32 for the matmuls.
By default only Linear / GPT-2 Conv1D weights are quantized; ``scope=all`` quantizes every
floating-point parameter (LayerNorms, embeddings, biases), the common mistake, to show its cost.
"""

from __future__ import annotations

from pathlib import Path

from ..sources import skeleton
from .base import BuildContext, Param, Recipe, read_json, write_json
from .torch_common import save_state, tied_output_names, torch_variant

EPS = 1e-12


def quantize_tensor(w, scheme: str, granularity: str):
    """Return (q int8, scale float32, zero_point float32 or None); channel = rows of a [out, in] weight."""
    import torch

    w = w.detach().float()
    per_channel = granularity == "channel" and w.dim() >= 2
    flat = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
    if scheme == "absmax":
        scale = 127.0 / flat.abs().amax(dim=1).clamp_min(EPS)
        q = torch.round(flat * scale[:, None]).clamp(-127, 127)
        zp = None
    elif scheme == "zeropoint":
        lo, hi = flat.amin(dim=1), flat.amax(dim=1)
        scale = 255.0 / (hi - lo).clamp_min(EPS)
        zp = torch.round(-scale * lo) - 128
        q = torch.clamp(torch.round(flat * scale[:, None] + zp[:, None]), -128, 127)
    else:
        raise ValueError(f"unknown scheme {scheme}")
    return q.to(torch.int8).reshape(w.shape), scale.float(), zp


def dequantize_tensor(q, scale, zp=None):
    rows = scale.numel()
    flat = q.float().reshape(rows, -1) if rows > 1 else q.float().reshape(1, -1)
    if zp is not None:
        flat = flat - zp.reshape(-1, 1)
    return (flat / scale.reshape(-1, 1)).reshape(q.shape)


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


def quantize_model_weights(model, scheme: str, granularity: str, scope: str = "linear") -> dict:
    """{param name: (q, scale, zp, transposed)} for every target weight of ``model``."""
    params = dict(model.named_parameters())
    result = {}
    for name, (_, transposed) in target_weights(model, scope).items():
        w = params[name].detach()
        w = w.t() if transposed else w
        q, scale, zp = quantize_tensor(w, scheme, granularity)
        result[name] = (q, scale, zp, transposed)
    return result


def quantize_weights_to_file(ctx: BuildContext, out: Path, scheme: str, granularity: str, scope: str = "linear") -> dict:
    model = ctx.loaded().model
    ctx.say(0.3, f"{scheme} int8 on {granularity} granularity")
    quantized = quantize_model_weights(model, scheme, granularity, scope)
    tensors = {}
    for name, (q, scale, zp, _) in quantized.items():
        tensors[f"{name}.q"], tensors[f"{name}.scale"] = q, scale
        if zp is not None:
            tensors[f"{name}.zp"] = zp.float()
    params = dict(model.named_parameters())
    quantized_ptrs = {params[n].data_ptr() for n in quantized}
    for name, value in model.state_dict().items():
        if name not in quantized and value.data_ptr() not in quantized_ptrs:  # skip tied aliases
            tensors[name] = value
    save_state(out / "weights.safetensors", tensors)
    write_json(out / "quantized.json", {"scheme": scheme, "granularity": granularity, "scope": scope,
                                        "weights": {n: {"transposed": t} for n, (_, _, _, t) in quantized.items()}})
    return {"quantized_weights": len(quantized)}


def load_dequantized(ctx: BuildContext, art: Path):
    """Rebuild the fp32 model from an int8 artifact: int8 * scales -> float32 weights."""
    from safetensors.torch import load_file

    meta = read_json(art / "quantized.json")
    tensors = load_file(str(art / "weights.safetensors"))
    model = skeleton(ctx.source)
    state = {k: v for k, v in tensors.items() if not k.endswith((".q", ".scale", ".zp"))}
    for name, info in meta["weights"].items():
        w = dequantize_tensor(tensors[f"{name}.q"], tensors[f"{name}.scale"], tensors.get(f"{name}.zp"))
        state[name] = w.t().contiguous() if info["transposed"] else w
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise RuntimeError(f"artifact has weights the model does not: {unexpected[:3]}")
    model.tie_weights()
    return model.eval()


def _builder(scheme: str):
    def build(ctx: BuildContext, params: dict, out: Path) -> dict:
        return quantize_weights_to_file(ctx, out, scheme, params["granularity"], params["scope"])

    return build


def _loader(scheme: str):
    def load(ctx: BuildContext, params: dict, art: Path):
        model = load_dequantized(ctx, art).to(ctx.device)
        notes = ["Weight-only int8: weights are stored as int8 + scales and dequantized to float32 at load, so memory and speed match fp32; only the file shrinks."]
        if params["scope"] == "all":
            notes.append("scope=all also rounds LayerNorm, embedding and bias parameters: the usual mistake, shown here for its cost.")
        if params["granularity"] == "tensor":
            notes.append("One scale per tensor: a single outlier weight squeezes all others into few levels; granularity=channel is usually much better.")
        return torch_variant("", ctx.task, model, device=ctx.device, notes=notes)

    return load


def _params():
    return (
        Param("granularity", "channel", ("tensor", "channel"), "one scale per tensor or per output channel"),
        Param("scope", "linear", ("linear", "all"), "quantize Linear/Conv1D weights only, or every parameter"),
    )


RECIPES = [
    Recipe("absmax-int8", "weight-only", "Symmetric absmax round-to-nearest int8 weights (scale = 127 / max|W|)", _builder("absmax"), _loader("absmax"), params=_params()),
    Recipe("zeropoint-int8", "weight-only", "Asymmetric zero-point round-to-nearest int8 weights (scale = 255 / (max - min))", _builder("zeropoint"), _loader("zeropoint"), params=_params()),
]
