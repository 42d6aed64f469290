"""The load-and-run code of an exported variant, and the README.md around it.

One snippet per artifact kind and task, each at most 15 lines, importing only the runtime the variant needs
(onnxruntime + tokenizers + numpy for ONNX; torch + transformers, plus safetensors or torchao where the recipe
needs them, for torch variants) and never the lab. Each one defines ``texts`` on one line (the tests swap in
held-out inputs there) and ends with the task's output in ``OUTPUT[task]``: sentence embeddings (mean pooling over
the attention mask, then L2 normalisation, as the lab measures them) or logits.
"""

from __future__ import annotations

import json

from .tasks import all_tasks, get_task

MAX_LINES = 15
EXAMPLE_TEXTS = ["Quantized models are smaller on disk.", "This folder runs without the lab."]
OUTPUT = {t.name: t.snippet_output for t in all_tasks()}   # what each task's snippet ends with (the export tests read it)
# the pip distributions each kind of snippet imports
RUNTIMES = {
    "onnx": ("numpy", "onnxruntime", "tokenizers"),
    "pretrained": ("torch", "transformers"),
    "torchscript": ("torch", "transformers"),
    "dynamic-int8": ("torch", "transformers"),
    "weight-only": ("torch", "transformers", "safetensors"),
    "torchao": ("torch", "transformers", "torchao"),
}


def _texts_line() -> str:
    return f"texts = {json.dumps(EXAMPLE_TEXTS)}"


# -- ONNX Runtime: tokenizers + numpy, no torch ----------------------------------------------------
def onnx_snippet(task: str, d: dict) -> str:
    feeds = ", ".join(f'"{name}": {"ids" if name == "input_ids" else "mask"}' for name in d["input_names"])
    lines = [
        "import numpy as np, onnxruntime as ort" + (", json" if get_task(task).has_labels else ""),   # the labels are in qlab.json
        "from tokenizers import Tokenizer",
        _texts_line(),
        f'tok = Tokenizer.from_file("tokenizer.json")  # pads to the longest text, truncates at {d["max_length"]} tokens',
        'session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])',
        "enc = tok.encode_batch(texts)",
        "ids = np.array([e.ids for e in enc], dtype=np.int64)",
        "mask = np.array([e.attention_mask for e in enc], dtype=np.int64)",
    ]
    run = f'session.run(["{d["output_name"]}"], {{{feeds}}})[0]'
    lines += get_task(task).onnx_snippet_tail(run, d)
    return "\n".join(lines)


# -- torch + transformers ------------------------------------------------------------------------
def _torch_tail(task: str, d: dict, forward: str) -> list[str]:
    """Tokenize, run ``forward`` (an expression of ``enc``) and post-process, as the lab does."""
    lines = [
        f'enc = tok(texts, padding=True, truncation=True, max_length={d["max_length"]}, return_tensors="pt")',
        "with torch.inference_mode():",
    ]
    return lines + get_task(task).torch_snippet_tail(forward)


def _call(task: str, target: str = "model") -> str:
    t = get_task(task)
    extra = ", use_cache=False" if t.generates else ""
    return f'{target}(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]{extra}).{t.output_name}'


def _head(task: str, *imports: str) -> list[str]:
    cls = get_task(task).model_class
    return [*imports, f"from transformers import {cls}, AutoTokenizer", _texts_line(), 'tok = AutoTokenizer.from_pretrained(".")'], cls


def pretrained_snippet(task: str, d: dict) -> str:
    head, cls = _head(task, "import torch")
    dtype = d.get("dtype", "float32")
    load = f'model = {cls}.from_pretrained(".", dtype=torch.{dtype}).eval()' + ("  # the lab's reference" if dtype == "float32" else "")
    return "\n".join(head + [load] + _torch_tail(task, d, _call(task)))


def torchscript_snippet(task: str, d: dict) -> str:
    head, cls = _head(task, "import torch")
    fn = _call(task).replace('enc["input_ids"]', "ids").replace('enc["attention_mask"]', "mask")
    lines = head + [
        f'model = {cls}.from_pretrained(".", attn_implementation="eager").eval().requires_grad_(False)',
        f'enc = tok(texts, padding=True, truncation=True, max_length={d["max_length"]}, return_tensors="pt")',
        "with torch.inference_mode():  # trace once, then call traced(ids, mask) for every batch",
        f'    traced = torch.jit.trace(lambda ids, mask: {fn}, (enc["input_ids"], enc["attention_mask"]), strict=False)',
    ]
    tail = _torch_tail(task, d, 'traced(enc["input_ids"], enc["attention_mask"])')[2:]
    return "\n".join(lines + tail)


def dynamic_int8_snippet(task: str, d: dict) -> str:
    qconfig = d["qconfig"]
    head, cls = _head(task, "import json, torch")
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
    return "\n".join(lines + _torch_tail(task, d, _call(task)))


def weight_only_snippet(task: str, d: dict) -> str:
    head, cls = _head(task, "import torch", "from safetensors.torch import load_file")
    head[len(head) - 3] = f"from transformers import AutoConfig, {cls}, AutoTokenizer"
    lines = head + [
        't = load_file("weights.safetensors")  # int8 "<name>.q" with float32 "<name>.scale" (and "<name>.zp"), shaped to broadcast',
        'state = {k: v for k, v in t.items() if not k.endswith((".q", ".scale", ".zp"))}',
        'state.update({n[:-2]: (t[n].float() - t.get(n[:-2] + ".zp", 0.0)) / t[n[:-2] + ".scale"] for n in t if n.endswith(".q")})  # W = (q - zp) / scale',
        f'model = {cls}.from_config(AutoConfig.from_pretrained("."), attn_implementation="eager").eval()',
        "model.load_state_dict(state, strict=False)",
    ]
    return "\n".join(lines + _torch_tail(task, d, _call(task)))


def torchao_snippet(task: str, d: dict) -> str:
    head, cls = _head(task, "import torch", "from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_")
    lines = head + [
        f'model = {cls}.from_pretrained(".", attn_implementation="eager").eval()  # the int8 weights, dequantized',
        "quantize_(model, Int8DynamicActivationInt8WeightConfig())",
    ]
    return "\n".join(lines + _torch_tail(task, d, _call(task)))


SNIPPETS = {
    "onnx": onnx_snippet,
    "pretrained": pretrained_snippet,
    "torchscript": torchscript_snippet,
    "dynamic-int8": dynamic_int8_snippet,
    "weight-only": weight_only_snippet,
    "torchao": torchao_snippet,
}


def snippet(kind: str, task: str, details: dict) -> str:
    """The load-and-run code for an artifact ``kind`` on ``task``; ``details`` fills in max_length, engine, names."""
    return SNIPPETS[kind](task, details)


def snippet_from_readme(text: str) -> str | None:
    """The first ```python block of an exported README.md."""
    start = text.find("```python\n")
    if start < 0:
        return None
    end = text.find("\n```", start + 10)
    return text[start + 10:end] if end > 0 else None


# -- README.md -------------------------------------------------------------------------------------
def _measured_lines(meta: dict) -> list[str]:
    m = meta.get("measured")
    if not m:
        return [f"Not measured on this machine yet: {meta.get('measured_note') or 'no saved comparison has this variant.'}"]
    lines = [f"From the lab's run `{m['run_id'][:8]}` ({m.get('created', '')}) on {m.get('cpu', '?')} "
             f"({', '.join(m.get('instruction_sets') or []) or 'no notable instruction sets'}), {m.get('threads', '?')} threads, "
             f"data: {m.get('data', '?')}.", ""]
    lines += ["| batch | p50 ms (end to end, geometric mean over lengths) |", "|---|---|"]
    lines += [f"| {b} | {v:.2f} |" for b, v in (m.get("p50_ms_by_batch") or {}).items() if v is not None]
    lines += ["", f"Size on disk in the lab: {m.get('size_bytes', 0) / 2**20:.1f} MB."]
    quality = ", ".join(f"{k} {v:.4f}" for k, v in (m.get("quality") or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    ref = ", ".join(f"{k} {v:.4f}" for k, v in (m.get("reference_quality") or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    if quality:
        lines.append(f"Quality: {quality}" + (f" (fp32 on the same data: {ref})." if ref else "."))
    lines.append("Timings belong to that machine; they do not transfer to other hardware.")
    return lines


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB"


def readme(meta: dict, code: str) -> str:
    """The exported folder's README.md: what it is, how to install and run it, what the lab measured, the files."""
    runtime = meta["runtime"]
    post = meta["postprocessing"]
    files = "\n".join(f"- `{name}` ({_size(info['bytes'])})" for name, info in sorted(meta["files"].items()))
    return "\n".join([
        f"# {meta['model']} · `{meta['variant']['spec']}` ({meta['task']})",
        "",
        f"Exported by Quantization Lab on {meta['created']}. {meta['variant']['summary']}.",
        f"This folder runs on its own with {', '.join(runtime)}; it never imports the lab.",
        "",
        "## Load and run",
        "",
        "```bash",
        "pip install -r requirements.txt",
        "```",
        "",
        "Run from inside this folder (paths are relative):",
        "",
        "```python",
        code,
        "```",
        "",
        f"Post-processing: {post['description']}",
        "",
        "## What the lab measured",
        "",
        *_measured_lines(meta),
        "",
        "## Files",
        "",
        files,
        "- `qlab.json`: the variant and its parameters, the source fingerprint, input and output names and dtypes, "
        "the post-processing, the library versions and the measured summary",
        "",
    ])
