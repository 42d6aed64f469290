"""The OpenVINO family: the lab's fp32 ONNX graph converted to an OpenVINO IR (run in f32, or in bf16 as openvino-bf16),
NNCF static int8 (calibrated), and NNCF weight-only int8 / int4 for causal LMs, all run by OpenVINO's CPU plugin (causal
LMs with the lab's KV-cache decoder) in the inference precision their ``precision`` parameter chooses (precision.py)."""

from __future__ import annotations

from ..family import Exporter, Family, NoteCause
from ..onnx_common import CAUSAL_ONNX_LAYOUT
from . import recipes
from .export import RUNTIME, ir_io, openvino_snippet, write_ir
from .precision import BF16_EMULATED_NOTE
from .probe import openvino_probe

EXPORTER = Exporter("openvino", write_ir, openvino_snippet, RUNTIME, io=ir_io, needs_fast_tokenizer=True)

# slow-variant causes, each evidenced by the note this family's load wrote on the machine that ran it (recipes.py)
CAUSES = (
    NoteCause("openvino-int8-no-vnni", "this CPU has no VNNI or AMX, so OpenVINO's int8 matmuls gain little over fp32", recipes.NO_INT8_ISA_NOTE),
    NoteCause("openvino-bf16-emulated", "this CPU has no native bf16 (avx512_bf16 or AMX), so OpenVINO emulates bf16: f32 arithmetic "
              "plus conversions to and from bf16", BF16_EMULATED_NOTE),
)

FAMILY = Family(
    name="openvino",
    recipes=tuple(recipes.RECIPES),
    exporters={r.name: EXPORTER for r in recipes.RECIPES},
    colors={
        "openvino-fp32": "#34495e",
        "openvino-bf16": "#7f8c9d",      # the fp32 IR in bf16: a lighter shade of openvino-fp32's slate
        "openvino-int8": "#00a58e",
        "openvino-int8-wo": "#7fd1c2",   # weight-only: a lighter shade of openvino-int8's teal
        "openvino-int4": "#006b5c",      # 4-bit: a darker shade
    },
    causes=CAUSES,
    causal_layout=CAUSAL_ONNX_LAYOUT,    # the IR is the lab's decoder-with-past ONNX graph, converted
    loads_transformers=False,
    probe=openvino_probe,
    versions=("openvino", "nncf"),       # the runtime that compiles the IR and the quantizer that wrote it
)
