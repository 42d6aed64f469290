"""The ONNX Runtime family: onnx-fp32 (fused), dynamic int8, block-wise int4, static QDQ int8 and accuracy-aware mixed int8."""

from __future__ import annotations

from ..family import Exporter, Family
from ..onnx_common import CAUSAL_ONNX_LAYOUT, ONNX_RUNTIME_CAUSES
from . import mixed, recipes
from .export import RUNTIME, onnx_io, onnx_snippet, write_onnx

EXPORTER = Exporter("onnx", write_onnx, onnx_snippet, RUNTIME, io=onnx_io, needs_fast_tokenizer=True)

FAMILY = Family(
    name="onnxruntime",
    recipes=(*recipes.RECIPES, *mixed.RECIPES),
    exporters={name: EXPORTER for name in ("onnx-fp32", "onnx-int8", "onnx-int8-static", "onnx-int8-mixed", "onnx-int4")},
    colors={
        "onnx-fp32": "#2ca02c",
        "onnx-int8": "#d62728",
        "onnx-int8-static": "#a6761d",
        "onnx-int8-mixed": "#e7298a",
        "onnx-int4": "#8c1516",       # a darker shade of onnx-int8's red
    },
    causes=ONNX_RUNTIME_CAUSES,
    causal_layout=CAUSAL_ONNX_LAYOUT, loads_transformers=False,
    versions=("onnxruntime", "onnx", "onnxscript"),   # the runtime, and the exporter and quantizer tooling that wrote its graphs
)
