"""The OpenVINO GenAI recipe: a causal LM as the stateful OpenVINO model ``openvino_genai.LLMPipeline`` loads, its
weights compressed by NNCF, its KV cache in the CPU plugin.

``openvino-genai`` builds from the lab's fp32 model (stateful.py) and stores an LLMPipeline folder:
``openvino_model.xml`` / ``.bin`` (weights int8 asymmetric per channel, or with ``weights=int4`` int4 asymmetric in
groups of 64 with the embeddings and output layer int8), ``openvino_tokenizer.xml`` / ``openvino_detokenizer.xml``
(OpenVINO Tokenizers), ``config.json`` and ``generation_config.json``, and the lab's notes in ``openvino_genai.json``.
The lab compiles the model itself (runtime.py) so perplexity sees every position's logits and generation is timed
token by token like every other variant; the pipeline is not in the timed path.

Parameters applied at load (the stored folder is the same for every value): ``precision``, the CPU plugin's inference
precision, f32 by default (int8 weights decoded 9.5 ms/token in f32 against 15.2 in bf16 on an AMX Xeon); and
``kv_cache``, the precision of the cache in the plugin: ``float`` (the inference precision) by default, so generation
computes what perplexity measures; ``u8`` is the CPU plugin's own default, which quantizes the cached keys and values.
"""

from __future__ import annotations

import functools
import logging
import shutil
from importlib import metadata, util
from pathlib import Path

from ...errors import RecipeError
from ...tasks import CAUSAL_LM
from ..base import BuildContext, Param, Recipe, Variant, read_json, write_json
from ..onnx_common import quiet
from ..openvino_quiet import nncf as quiet_nncf
from ..openvino_quiet import openvino, openvino_tokenizers
from . import stateful
from .runtime import MODEL_BIN, MODEL_XML, PERFORMANCE_HINT, StatefulDecoder, compile_stateful, compiled_property, runner

NAME = "openvino-genai"
INFO = "openvino_genai.json"   # the lab's notes on the build
TOKENIZER, DETOKENIZER = "openvino_tokenizer.xml", "openvino_detokenizer.xml"
CONFIGS = ("config.json", "generation_config.json")
DISTRIBUTIONS = {"openvino_genai": "openvino-genai", "openvino_tokenizers": "openvino-tokenizers", "nncf": "nncf", "openvino": "openvino"}
PRECISIONS = ("f32", "bf16")
CAPABILITY = {"f32": "FP32", "bf16": "BF16"}   # each one's name in the CPU plugin's OPTIMIZATION_CAPABILITIES
KV_CACHES = ("float", "u8")
INT4_GROUP, INT4_RATIO = 64, 1.0
WEIGHTS = {   # weights=... -> (NNCF mode name, keyword arguments, words for the notes)
    "int8": ("INT8_ASYM", {}, "int8 weights (NNCF INT8_ASYM: one scale and zero point per output channel)"),
    "int4": ("INT4_ASYM", {"group_size": INT4_GROUP, "ratio": INT4_RATIO},
             f"int4 weights (NNCF INT4_ASYM in groups of {INT4_GROUP}, ratio {INT4_RATIO:g}; the embeddings and output layer INT8_ASYM)"),
}
SHORT = {"int8": "int8 weights (NNCF INT8_ASYM)", "int4": f"int4 weights (NNCF INT4_ASYM, groups of {INT4_GROUP})"}


# -- availability -----------------------------------------------------------------------------------------------------
def version_of(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def missing_reason() -> str | None:
    """Why OpenVINO GenAI cannot run here (a module not installed, or openvino-genai built for another openvino), or None.

    Read from the installed packages, not by importing them: the variant listing stays light."""
    for module, distribution in DISTRIBUTIONS.items():
        if util.find_spec(module) is None:
            return f"{distribution} is not installed here (pip install -r requirements.txt: openvino-genai, openvino-tokenizers and nncf)."
    genai, runtime, tokenizers = version_of("openvino-genai"), version_of("openvino"), version_of("openvino-tokenizers")
    release = lambda v: ".".join((v or "").split(".")[:3])  # noqa: E731 - 2026.4.1.0 and 2026.4.1 are one release
    for name, version in (("openvino-genai", genai), ("openvino-tokenizers", tokenizers)):
        if version and runtime and release(version) != release(runtime):
            return f"{name} {version} is built for openvino {release(version)}, but openvino {runtime} is installed (pip install -r requirements.txt)."
    return None


def check(device: str) -> str | None:
    return missing_reason() or ("OpenVINO GenAI runs here on OpenVINO's CPU plugin; choose device cpu." if device != "cpu" else None)


@functools.lru_cache(maxsize=1)
def capabilities() -> tuple[str, ...]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` on this machine (FP32, BF16, INT8, ...)."""
    return tuple(str(c) for c in openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def offered() -> list[str]:
    """The precisions a picker offers here: f32, and bf16 where the CPU plugin lists BF16."""
    return [p for p in PRECISIONS if p == "f32" or CAPABILITY[p] in capabilities()]


# -- build ------------------------------------------------------------------------------------------------------------
def _nncf():
    nncf = quiet_nncf()
    nncf.set_log_level(logging.ERROR)
    return nncf


def compress(ov_model, weights: str):
    """The model with its weights compressed by NNCF as ``weights`` says (see WEIGHTS)."""
    nncf = _nncf()
    mode, kwargs, _ = WEIGHTS[weights]
    with quiet():
        return nncf.compress_weights(ov_model, mode=getattr(nncf.CompressWeightsMode, mode), **kwargs)


def _constant_types(ov_model) -> dict:
    """How many weight constants of each element type the model holds (u8 / u4 / i8 after compression, f32 left)."""
    counts: dict = {}
    for op in ov_model.get_ops():
        if op.get_type_name() == "Constant" and op.get_output_partial_shape(0).rank.get_length() >= 2:
            name = op.get_output_element_type(0).get_type_name()
            counts[name] = counts.get(name, 0) + 1
    return counts


def write_tokenizers(tokenizer, out: Path) -> str | None:
    """openvino_tokenizer.xml and openvino_detokenizer.xml, converted by OpenVINO Tokenizers; why not, or None."""
    ov = openvino()
    try:
        with quiet():
            tok, detok = openvino_tokenizers().convert_tokenizer(tokenizer, with_detokenizer=True)
    except Exception as err:  # noqa: BLE001 - the model still measures in the lab: the folder just cannot run in LLMPipeline
        return f"{err.__class__.__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    ov.save_model(tok, str(out / TOKENIZER))
    ov.save_model(detok, str(out / DETOKENIZER))
    return None


def write_configs(ctx: BuildContext, model, out: Path) -> None:
    """config.json and generation_config.json (the source's, or the model's own generation defaults where it has none)."""
    source = Path(ctx.source.path)
    for name in CONFIGS:
        if (source / name).is_file():
            shutil.copy(source / name, out / name)
    if not (out / "config.json").is_file():
        model.config.to_json_file(str(out / "config.json"))
    if not (out / "generation_config.json").is_file():
        from transformers import GenerationConfig

        GenerationConfig.from_model_config(model.config).to_json_file(str(out / "generation_config.json"))


def build_openvino_genai(ctx: BuildContext, params: dict, out: Path) -> dict:
    weights = params["weights"]
    loaded = ctx.loaded()
    ctx.say(0.2, "tracing the fp32 model into a stateful OpenVINO model (KV cache as model state)")
    ov_model, pasts = stateful.convert(loaded.model, loaded.tokenizer, ctx.source.name)
    stateful.make_stateful(ov_model, pasts, loaded.model.config)
    states = stateful.state_count(ov_model)
    ctx.say(0.6, f"NNCF weight compression: {WEIGHTS[weights][2]}")
    ov_model = compress(ov_model, weights)
    openvino().save_model(ov_model, str(out / MODEL_XML), compress_to_fp16=False)   # what NNCF left float stays f32
    ctx.say(0.85, "converting the tokenizer with OpenVINO Tokenizers")
    tokenizer_error = write_tokenizers(loaded.tokenizer, out)
    write_configs(ctx, loaded.model, out)
    constants = _constant_types(ov_model)
    notes = [f"Traced from the fp32 transformers model (scaled-dot-product attention) by OpenVINO's PyTorch frontend and made stateful: "
             f"{states} states ({len(pasts) // 2} layers' keys and values), inputs {', '.join(stateful.INPUTS)}; "
             f"{WEIGHTS[weights][2]}; weight constants by type: {', '.join(f'{k} x{v}' for k, v in sorted(constants.items()))}."]
    if tokenizer_error:
        notes.append(f"OpenVINO Tokenizers could not convert this tokenizer ({tokenizer_error}): the lab measures the model, but "
                     "openvino_genai.LLMPipeline cannot load the folder without openvino_tokenizer.xml.")
    write_json(out / INFO, {"notes": notes, "weights": weights, "states": states, "constants": constants,
                            "llm_pipeline_folder": tokenizer_error is None})
    return {"weights": weights, "states": states}


# -- load -------------------------------------------------------------------------------------------------------------
def load_openvino_genai(ctx: BuildContext, params: dict, art: Path) -> Variant:
    precision, kv_cache, weights = params["precision"], params["kv_cache"], params["weights"]
    if precision not in offered():
        raise RecipeError(f"Variant '{NAME}:precision={precision}' cannot run here: OpenVINO's CPU plugin does not offer "
                          f"{CAPABILITY[precision]} on this CPU (OPTIMIZATION_CAPABILITIES: {', '.join(capabilities())}).")
    compiled = compile_stateful(art, ctx.threads, precision, kv_cache)
    got = compiled_property(compiled, "INFERENCE_PRECISION_HINT")
    cache = compiled_property(compiled, "KV_CACHE_PRECISION")
    threads = compiled_property(compiled, "INFERENCE_NUM_THREADS")
    asked = "" if got == precision else f", not the {precision} asked for"
    notes = list(read_json(art / INFO).get("notes", []))
    notes.append(f"OpenVINO GenAI stateful model: the KV cache lives in the CPU plugin (no past inputs); {SHORT[weights]}; "
                 f"{got} inference precision{asked}; {threads} threads.")
    cache_words = ("the inference precision, so the cache holds what a whole-sequence pass computes" if kv_cache == "float"
                   else "the CPU plugin's default, which quantizes the cached keys and values: generation then differs slightly from perplexity's passes")
    notes.append(f"OpenVINO CPU plugin: KV cache in {cache} (kv_cache={kv_cache}: {cache_words}), "
                 f"{PERFORMANCE_HINT.lower()} hint, dynamic quantization group size {compiled_property(compiled, 'DYNAMIC_QUANTIZATION_GROUP_SIZE')}; "
                 "the lab drives the compiled model's infer request itself (as LLMPipeline's SDPA backend does), token by token.")
    size = sum((art / name).stat().st_size for name in (MODEL_XML, MODEL_BIN))
    return Variant(name="", task=ctx.task, run=runner(compiled), param_bytes=size, notes=notes, device="cpu", module=compiled,
                   decoder=lambda: StatefulDecoder(compiled))


def refuse(params: dict) -> str | None:
    """Recipe.refuse: bf16 where the CPU plugin does not offer it (it would quietly compile f32)."""
    precision = params.get("precision")
    if precision in (None, "f32") or missing_reason():
        return None
    if CAPABILITY[precision] in capabilities():
        return None
    return (f"precision={precision} needs {CAPABILITY[precision]} in OpenVINO's CPU plugin, which this CPU does not offer "
            f"(OPTIMIZATION_CAPABILITIES: {', '.join(capabilities()) or 'none'}).")


RECIPES = [
    Recipe(
        NAME,
        "OpenVINO GenAI's stateful model (the KV cache in the CPU plugin), NNCF int8 or int4 weights, the folder openvino_genai.LLMPipeline loads",
        build_openvino_genai, load_openvino_genai,
        params=(
            Param("weights", "int8", tuple(WEIGHTS), f"NNCF weight compression: int8 asymmetric per channel, or int4 asymmetric in groups of {INT4_GROUP} "
                  "(embeddings and output layer int8)"),
            Param("precision", "f32", PRECISIONS, "the CPU plugin's inference precision (INFERENCE_PRECISION_HINT, applied when the model is "
                  "compiled: the stored folder is the same for every value)", at_load=True, offered=offered),
            Param("kv_cache", "float", KV_CACHES, "the KV cache's precision in the plugin (KV_CACHE_PRECISION, applied at compile): float = the "
                  "inference precision; u8 = the CPU plugin's default, quantized keys and values", at_load=True),
        ),
        tasks=(CAUSAL_LM,), check=check, refuse=refuse,
    ),
]
