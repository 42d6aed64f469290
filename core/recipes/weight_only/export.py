"""Exporting weight-only int8: the int8 weights with their scales (and zero points), shaped to broadcast, and a dequantizing snippet."""

from __future__ import annotations

from pathlib import Path

from ..export_kit import copy_config, torch_call, torch_head, torch_tail

RUNTIME = ("torch", "transformers", "safetensors")


def write_weight_only(job, out: Path) -> dict:
    """int8 weights + float32 scales (and zero points), each laid out to broadcast against its parameter's shape."""
    from safetensors.torch import load_file, save_file

    meta = job.art_json("quantized.json")
    tensors = load_file(str(job.art / "weights.safetensors"))
    packed = {k: v for k, v in tensors.items() if not k.endswith((".q", ".scale", ".zp"))}
    for name, info in meta["weights"].items():
        q, scale, zp = tensors[f"{name}.q"], tensors[f"{name}.scale"], tensors.get(f"{name}.zp")
        if info.get("transposed"):          # quantized per row of W.T ([out, in]): store q as [in, out], scales per column
            q, shape = q.t().contiguous(), (1, scale.numel())
        elif scale.numel() > 1:              # per output channel: one scale per row
            shape = (scale.numel(),) + (1,) * (q.dim() - 1)
        else:                                # per tensor
            shape = (1,)
        packed[f"{name}.q"], packed[f"{name}.scale"] = q, scale.reshape(shape).contiguous()
        if zp is not None:
            packed[f"{name}.zp"] = zp.float().reshape(shape).contiguous()
    save_file(packed, str(out / "weights.safetensors"))
    copy_config(job.source.path, out)
    return {"apply_on_load": "dequantize: W = (q - zero_point) / scale, then load_state_dict into the architecture from config.json",
            "scheme": meta["scheme"], "granularity": meta["granularity"], "scope": meta["scope"],
            "quantized": sorted(meta["weights"]),
            "layout": "<name>.q int8 in the parameter's own shape; <name>.scale (and <name>.zp) float32, shaped to broadcast against it"}


def refuse_groupwise(params: dict) -> str | None:
    """Group-wise scales need an unpacking step longer than a README snippet."""
    return "group-wise weight-only scales" if params.get("granularity") == "group" else None


def weight_only_snippet(task: str, d: dict) -> str:
    head, cls = torch_head(task, "import torch", "from safetensors.torch import load_file")
    head[len(head) - 3] = f"from transformers import AutoConfig, {cls}, AutoTokenizer"
    lines = head + [
        't = load_file("weights.safetensors")  # int8 "<name>.q" with float32 "<name>.scale" (and "<name>.zp"), shaped to broadcast',
        'state = {k: v for k, v in t.items() if not k.endswith((".q", ".scale", ".zp"))}',
        'state.update({n[:-2]: (t[n].float() - t.get(n[:-2] + ".zp", 0.0)) / t[n[:-2] + ".scale"] for n in t if n.endswith(".q")})  # W = (q - zp) / scale',
        f'model = {cls}.from_config(AutoConfig.from_pretrained("."), attn_implementation="eager").eval()',
        "model.load_state_dict(state, strict=False)",
    ]
    return "\n".join(lines + torch_tail(task, d, torch_call(task)))
