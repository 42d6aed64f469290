"""Exporting OpenVINO IRs: model.xml / model.bin as stored, their inputs and outputs read from the IR, and a snippet
that needs only openvino, tokenizers and numpy."""

from __future__ import annotations

from pathlib import Path

from ...tasks import get_task
from ..decoders import POSITIONS
from ..export_kit import copy_file, texts_line
from ..openvino_quiet import openvino
from .recipes import compile_precision
from .runtime import BIN, INFO, XML

RUNTIME = ("numpy", "openvino", "tokenizers")

# a decoder with past key/values run over whole texts: position ids, and an empty KV cache for every layer
_DECODER_FEEDS = [
    'feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": np.broadcast_to(np.arange(ids.shape[1]), ids.shape).copy()}',
    "for i in model.inputs:  # past.N.key/value [batch, kv_heads, past_len, head_dim]; generation feeds back present.N.*",
    '    if i.any_name.startswith("past."):',
    "        feeds[i.any_name] = np.zeros((len(ids), i.partial_shape[1].get_length(), 0, i.partial_shape[3].get_length()), dtype=np.float32)",
]


def write_ir(job, out: Path) -> dict:
    """model.xml and model.bin, as stored (the lab's own JSON bookkeeping stays behind), and the inference precision the
    lab compiles them in (``precision``: the snippet sets the same ``INFERENCE_PRECISION_HINT``)."""
    for name in (XML, BIN):
        copy_file(job.art / name, out / name)
    info = job.art_json(INFO)
    precision = compile_precision(job.recipe.name, job.params)
    return {"apply_on_load": f'nothing: the IR is already quantized; compile it with openvino.Core().compile_model("model.xml", "CPU", '
                             f'{{"INFERENCE_PRECISION_HINT": "{precision}"}}), the inference precision the lab compiles it in',
            "graph": XML, "weights": BIN, "precision": precision, "notes": info.get("notes", [])}


def ir_io(folder: Path) -> tuple[list[dict], list[dict]]:
    """The IR's inputs and outputs: name, numpy dtype, shape ("?" for a dynamic axis: the IR keeps no axis names)."""
    ov = openvino()

    model = ov.Core().read_model(str(Path(folder) / XML))

    def describe(nodes):
        return [{"name": n.get_any_name(), "dtype": n.get_element_type().to_dtype().name,
                 "shape": [d.get_length() if d.is_static else "?" for d in n.get_partial_shape()]} for n in nodes]

    return describe(model.inputs), describe(model.outputs)


def _config(d: dict) -> str:
    """The compile_model config of the snippet: the inference precision the lab compiled the IR in (where it says one)."""
    return f', {{"INFERENCE_PRECISION_HINT": "{d["precision"]}"}}' if d.get("precision") else ""


def openvino_snippet(task: str, d: dict) -> str:
    """OpenVINO: tokenizers + numpy, no torch and no ONNX Runtime."""
    lines = [
        "import numpy as np, openvino as ov" + (", json" if get_task(task).has_labels else ""),   # the labels are in qlab.json
        "from tokenizers import Tokenizer",
        texts_line(),
        f'tok = Tokenizer.from_file("tokenizer.json")  # pads to the longest text, truncates at {d["max_length"]} tokens',
        f'model = ov.Core().compile_model("{XML}", "CPU"{_config(d)})',
        "enc = tok.encode_batch(texts)",
        "ids = np.array([e.ids for e in enc], dtype=np.int64)",
        "mask = np.array([e.attention_mask for e in enc], dtype=np.int64)",
    ]
    if POSITIONS in d["input_names"]:
        lines += _DECODER_FEEDS
        run, d = f'model(feeds)["{d["output_name"]}"]', {**d, "input_names": ["input_ids", "attention_mask"]}   # feeds built above
    else:
        feeds = ", ".join(f'"{name}": {"ids" if name == "input_ids" else "mask"}' for name in d["input_names"])
        run = f'model({{{feeds}}})["{d["output_name"]}"]'
    lines += get_task(task).onnx_snippet_tail(run, d)
    return "\n".join(lines)
