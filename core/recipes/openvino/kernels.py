"""The kernels OpenVINO's CPU plugin ran a compiled model's matrix multiplications with, read from its runtime graph
(``get_runtime_model()``: each op's ``primitiveType`` names the kernel, e.g. ``brgemm_avx512_amx_I8``). The shapes are
dynamic, so the graph is read after an inference, on the shape it ran."""

from __future__ import annotations

from collections import Counter

MATMUL_OPS = ("FullyConnected", "MatMul")
SOURCE = "OpenVINO runtime graph"


def matmul_kernels(compiled) -> dict:
    """{"source", "kernels": {primitiveType: count}} over the runtime graph's FullyConnected and MatMul ops."""
    counts: Counter = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in MATMUL_OPS:
            counts[info["primitiveType"].astype(str) if "primitiveType" in info else "unknown"] += 1
    return {"source": SOURCE, "kernels": dict(counts), "none": "no FullyConnected or MatMul op in the runtime graph"}


def kernel_reader(compiled, run):
    """``Variant.kernels`` for a compiled model: one inference on the given inputs, then its runtime graph."""

    def read(input_ids, attention_mask) -> dict:
        run(input_ids, attention_mask)
        return matmul_kernels(compiled)

    return read
