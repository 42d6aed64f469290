"""Exporting the PyTorch family: save_pretrained folders, torch.ao dynamic int8 applied at load, torchao int8, TorchScript."""

from __future__ import annotations

from pathlib import Path

from ...errors import ExportError
from ..export_kit import copy_config, copy_file, source_weight_files, torch_call, torch_head, torch_tail

TORCH = ("torch", "transformers")


# -- writers ---------------------------------------------------------------------------------------
def write_pretrained(job, out: Path) -> dict:
    """The stored save_pretrained folder (config + safetensors in the variant's dtype)."""
    for path in sorted((job.art / "model").iterdir()):
        if path.is_file():
            copy_file(path, out / path.name)
    dtype = job.art_json("manifest.json").get("dtype") or "float32"
    if job.recipe.name == "torchscript":
        return {"apply_on_load": "torch.jit.trace of the fp32 model (TorchScript archives are pickles; the lab keeps safetensors and traces at load)",
                "dtype": "float32"}
    return {"apply_on_load": f"nothing: load with from_pretrained(dtype=torch.{dtype})", "dtype": dtype, "output_dtype": dtype}


def write_dynamic_int8(job, out: Path) -> dict:
    """The source's fp32 safetensors; the snippet applies quantize_dynamic exactly as the lab built the variant."""
    meta = job.art_json("quantized.json")
    if not meta.get("modules"):
        raise ExportError(f"The stored '{job.label}' has no record of its quantized layers (quantized.json); delete it and export again to rebuild it.")
    copy_config(job.source.path, out)
    for path in source_weight_files(Path(job.source.path)):
        copy_file(path, out / path.name)
    engine = meta["engine"]
    qconfig = "per_channel_dynamic_qconfig" if meta.get("per_channel", engine != "qnnpack") else "default_dynamic_qconfig"
    return {"apply_on_load": "torch.ao.quantization.quantize_dynamic (int8 weights, activations quantized on the fly)",
            "engine": engine, "qconfig": qconfig, "dtype": "qint8", "modules": list(meta["modules"]),
            "conv1d_to_linear": bool(meta.get("conv1d_converted")),
            "weights": "the source's fp32 weights; quantize_dynamic computes the same int8 weights and scales the lab stored"}


def write_torchao(job, out: Path) -> dict:
    """The stored absmax int8 weights dequantized to float32 (exactly what the lab hands to quantize_)."""
    from ..base import BuildContext
    from ..weight_codec import load_dequantized

    model = load_dequantized(BuildContext(source=job.source), job.art)
    model.save_pretrained(str(out), safe_serialization=True)
    return {"apply_on_load": "torchao.quantization.quantize_(model, Int8DynamicActivationInt8WeightConfig())",
            "weights": "absmax per-channel int8 weights as stored by the lab, dequantized to float32"}


# -- snippets: torch + transformers ----------------------------------------------------------------
def pretrained_snippet(task: str, d: dict) -> str:
    head, cls = torch_head(task, "import torch")
    dtype = d.get("dtype", "float32")
    load = f'model = {cls}.from_pretrained(".", dtype=torch.{dtype}).eval()' + ("  # the lab's reference" if dtype == "float32" else "")
    return "\n".join(head + [load] + torch_tail(task, d, torch_call(task)))


def torchscript_snippet(task: str, d: dict) -> str:
    head, cls = torch_head(task, "import torch")
    fn = torch_call(task).replace('enc["input_ids"]', "ids").replace('enc["attention_mask"]', "mask")
    lines = head + [
        f'model = {cls}.from_pretrained(".", attn_implementation="eager").eval().requires_grad_(False)',
        f'enc = tok(texts, padding=True, truncation=True, max_length={d["max_length"]}, return_tensors="pt")',
        "with torch.inference_mode():  # trace once, then call traced(ids, mask) for every batch",
        f'    traced = torch.jit.trace(lambda ids, mask: {fn}, (enc["input_ids"], enc["attention_mask"]), strict=False)',
    ]
    tail = torch_tail(task, d, 'traced(enc["input_ids"], enc["attention_mask"])')[2:]
    return "\n".join(lines + tail)


def dynamic_int8_snippet(task: str, d: dict) -> str:
    qconfig = d["qconfig"]
    head, cls = torch_head(task, "import json, torch")
    lines = head + [f'model = {cls}.from_pretrained(".", attn_implementation="eager").eval()  # fp32 weights']
    if d.get("conv1d_to_linear"):
        lines += [
            'for name, c in [(n, m) for n, m in model.named_modules() if type(m).__name__ == "Conv1D"]:  # GPT-2: to nn.Linear, as the lab',
            "    model.set_submodule(name, lin := torch.nn.Linear(*c.weight.shape))",
            '    lin.load_state_dict({"weight": c.weight.T, "bias": c.bias})  # Conv1D keeps its weight as [in, out]',
        ]
    lines += [
        f'torch.backends.quantized.engine = "{d["engine"]}"  # the kernel library the lab measured',
        f'torch.ao.quantization.quantize_dynamic(model, {{n: torch.ao.quantization.{qconfig} for n in json.load(open("qlab.json"))["recipe"]["modules"]}}, '
        'dtype=torch.qint8, inplace=True)  # the Linear layers the lab quantized',
    ]
    return "\n".join(lines + torch_tail(task, d, torch_call(task)))


def torchao_snippet(task: str, d: dict) -> str:
    head, cls = torch_head(task, "import torch", "from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_")
    lines = head + [
        f'model = {cls}.from_pretrained(".", attn_implementation="eager").eval()  # the int8 weights, dequantized',
        "quantize_(model, Int8DynamicActivationInt8WeightConfig())",
    ]
    return "\n".join(lines + torch_tail(task, d, torch_call(task)))
