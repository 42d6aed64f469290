"""The OpenVINO GenAI family: a causal LM as the stateful OpenVINO model ``openvino_genai.LLMPipeline`` runs (the KV
cache lives in the CPU plugin, no past inputs), its weights compressed by NNCF (int8, or int4 in groups of 64), with
its OpenVINO Tokenizers; measured by the lab through the compiled model's own infer request (recipes.py, runtime.py)."""

from __future__ import annotations

from ..family import Family
from .recipes import NAME, RECIPES

FAMILY = Family(
    name="openvino-genai",
    recipes=tuple(RECIPES),
    not_exported={NAME: "OpenVINO GenAI folders (a stateful model and tokenizer IRs run by openvino_genai.LLMPipeline) have no export snippet yet"},
    colors={NAME: "#0071c5"},   # one colour per recipe: openvino-genai:weights=int4 gets a spare one beside it (charts.variant_colors)
    causal_layout="stateful",   # the KV cache is model state, not graph inputs: part of its store key
    loads_transformers=False,
    versions=("openvino", "openvino-genai", "openvino-tokenizers", "nncf"),   # the runtime, the pipeline and tokenizer IRs, the compressor
)
