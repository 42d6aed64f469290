"""Exporting ONNX Runtime graphs: model.onnx as stored, its inputs and outputs read from the graph, a numpy + tokenizers snippet."""

from __future__ import annotations

from pathlib import Path

from ...tasks import get_task
from ..export_kit import copy_file, texts_line

RUNTIME = ("numpy", "onnxruntime", "tokenizers")


def write_onnx(job, out: Path) -> dict:
    """model.onnx and any external data files, as stored (the lab's own JSON bookkeeping stays behind)."""
    for path in sorted(job.art.iterdir()):
        if path.is_file() and path.suffix != ".json":
            copy_file(path, out / path.name)
    info = job.art_json("onnx.json")
    block = {"apply_on_load": "nothing: the graph is already quantized; run it with onnxruntime.InferenceSession",
             "graph": "model.onnx", "notes": info.get("notes", [])}
    if info.get("weight_type"):
        block["weight_type"] = info["weight_type"]
    mixed = job.art_json("sensitivity.json")
    if mixed:
        block.update(kept_fp32=mixed.get("kept_fp32", []), calibration_fidelity=mixed.get("final_fidelity"))
    return block


def onnx_io(folder: Path) -> tuple[list[dict], list[dict]]:
    """The graph's inputs and outputs (initializers left out): name, numpy dtype, shape with symbolic dimensions."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    graph = onnx.load(str(Path(folder) / "model.onnx"), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}

    def describe(values):
        out = []
        for v in values:
            if v.name in inits:
                continue
            t = v.type.tensor_type
            out.append({"name": v.name, "dtype": tensor_dtype_to_np_dtype(t.elem_type).name,
                        "shape": [d.dim_param or d.dim_value for d in t.shape.dim]})
        return out

    return describe(graph.input), describe(graph.output)


def onnx_snippet(task: str, d: dict) -> str:
    """ONNX Runtime: tokenizers + numpy, no torch."""
    feeds = ", ".join(f'"{name}": {"ids" if name == "input_ids" else "mask"}' for name in d["input_names"])
    lines = [
        "import numpy as np, onnxruntime as ort" + (", json" if get_task(task).has_labels else ""),   # the labels are in qlab.json
        "from tokenizers import Tokenizer",
        texts_line(),
        f'tok = Tokenizer.from_file("tokenizer.json")  # pads to the longest text, truncates at {d["max_length"]} tokens',
        'session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])',
        "enc = tok.encode_batch(texts)",
        "ids = np.array([e.ids for e in enc], dtype=np.int64)",
        "mask = np.array([e.attention_mask for e in enc], dtype=np.int64)",
    ]
    run = f'session.run(["{d["output_name"]}"], {{{feeds}}})[0]'
    lines += get_task(task).onnx_snippet_tail(run, d)
    return "\n".join(lines)

