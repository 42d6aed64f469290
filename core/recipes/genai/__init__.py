"""The onnxruntime-genai family: its model builder's fused decoder graph for Llama-family causal LMs, run by ONNX Runtime."""

from __future__ import annotations

from ..family import Family
from ..onnx_common import CAUSAL_ONNX_LAYOUT, ONNX_RUNTIME_CAUSES
from .recipes import RECIPES

FAMILY = Family(
    name="onnxruntime-genai",
    recipes=tuple(RECIPES),
    not_exported={"onnx-genai": "onnxruntime-genai decoder graphs (their cache inputs have symbolic head sizes the snippet does not fill in yet)"},
    causes=ONNX_RUNTIME_CAUSES,   # it loads through core.recipes.onnx_common like the ONNX Runtime family (no colour: charts give it a spare one)
    causal_layout=CAUSAL_ONNX_LAYOUT, loads_transformers=False,
    versions=("onnxruntime-genai", "onnxruntime", "onnx"),   # the model builder, and the runtime that runs its graph
)
