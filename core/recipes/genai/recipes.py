"""onnxruntime-genai's model builder: a Llama-family causal LM as one fused ONNX decoder (GroupQueryAttention with
rotary embeddings, SkipSimplifiedLayerNormalization, packed QKV and gate/up MatMulNBits), run by plain ONNX Runtime
through the lab's KV-cache decoder.

The builder reads the model's safetensors folder offline (``python -m onnxruntime_genai.models.builder``) and writes
``model.onnx`` with its weights in ``model.onnx.data``; the lab keeps those two files and the builder's
``genai_config.json``. Inputs are ``input_ids``, ``attention_mask`` and ``past_key_values.N.key/value``; outputs
``logits`` and ``present.N.key/value`` (position ids are derived from the mask inside the graph).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ...errors import RecipeError
from ...tasks import CAUSAL_LM
from ..base import BuildContext, Param, Recipe, write_json
from ..onnx_common import ACCURACY_LEVELS, load_onnx

ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM",
                 "Phi3ForCausalLM", "GraniteForCausalLM", "OlmoForCausalLM")
KEEP = ("model.onnx", "model.onnx.data", "genai_config.json")
BUILD_TIMEOUT_S = 1800


def _check(device: str) -> str | None:
    if importlib.util.find_spec("onnxruntime_genai") is None:
        return "onnxruntime-genai is not installed here (pip install onnxruntime-genai==0.18.0)."
    if device != "cpu":
        return "the lab builds onnx-genai graphs for the CPU execution provider; choose device cpu."
    return None


def _architecture(ctx: BuildContext) -> str:
    archs = list(getattr(ctx.config(), "architectures", None) or [])
    return archs[0] if archs else getattr(ctx.config(), "model_type", "?")


def build_onnx_genai(ctx: BuildContext, params: dict, out: Path) -> dict:
    arch = _architecture(ctx)
    if arch not in ARCHITECTURES:
        raise RecipeError("onnx-genai: onnxruntime-genai's model builder covers Llama-family models "
                          f"({', '.join(a.replace('ForCausalLM', '') for a in ARCHITECTURES)}); "
                          f"'{ctx.source.name}' is {arch}: use onnx-int4 or onnx-int8 instead.")
    precision, level = params["precision"], params["accuracy_level"]
    work = out / "builder"
    ctx.say(0.1, f"onnxruntime-genai model builder: {precision} ({arch}; about 20 s for a 135M model)")
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(ctx.source.path), "-o", str(work), "-p", precision,
           "-e", "cpu", "-c", str(out / "builder-cache"), "--extra_options", f"int4_accuracy_level={level}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, stdin=subprocess.DEVNULL,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if proc.returncode != 0 or not (work / "model.onnx").is_file():
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise RuntimeError(f"the onnxruntime-genai builder failed: {(lines[-1] if lines else f'exit code {proc.returncode}')[:300]}")
    for name in KEEP:
        if (work / name).is_file():
            shutil.move(str(work / name), str(out / name))
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out / "builder-cache", ignore_errors=True)
    genai = json.loads((out / "genai_config.json").read_text())["model"]["decoder"]
    ops = _fused_ops(out / "model.onnx")
    notes = [f"onnxruntime-genai {_version()} model builder, precision {precision}"
             + (f", MatMulNBits accuracy_level={level} ({ACCURACY_LEVELS[level]})" if precision in ("int4", "int8") else "")
             + ": " + ", ".join(f"{k} x{v}" for k, v in ops.items()) + "."]
    if precision == "int4":
        notes.append("int4 here is the builder's round-to-nearest (symmetric blocks of 32): on smollm2, whose reference weights are a dequantized "
                     "Q4_1 GGUF, re-rounding to an integer grid costs far more perplexity than on original weights.")
    write_json(out / "onnx.json", {"notes": notes, "head_dim": int(genai["head_size"]), "kv_heads": int(genai["num_key_value_heads"]), "ops": ops})
    return {}


def _fused_ops(graph: Path) -> dict:
    import onnx

    counts: dict = {}
    for node in onnx.load(str(graph), load_external_data=False).graph.node:
        if node.op_type in ("GroupQueryAttention", "SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization", "MatMulNBits",
                            "RotaryEmbedding", "GatherBlockQuantized", "MatMul"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _version() -> str:
    from importlib import metadata

    return metadata.version("onnxruntime-genai")


RECIPES = [
    Recipe(
        "onnx-genai",
        "onnxruntime-genai's model builder: a Llama-family LM as one fused ONNX decoder (GroupQueryAttention, packed MatMulNBits) with its KV cache",
        build_onnx_genai, load_onnx,
        params=(
            Param("precision", "int4", ("int4", "int8", "fp32"), "weights: 4-bit or 8-bit blocks (MatMulNBits), or fp32"),
            Param("accuracy_level", "4", tuple(ACCURACY_LEVELS), "MatMulNBits compute type: 4 = int8 (fastest on CPU), 1 = fp32"),
        ),
        tasks=(CAUSAL_LM,), check=_check,
    ),
]
