"""The ``gguf`` recipe: a Llama-family causal LM run by llama.cpp (the prebuilt ``xllamacpp`` wheel, through ctypes).

- ``gguf`` (``type=shipped``): the GGUF the model came as, exactly as shipped (smollm2's Q4_1). A source folder that
  holds exactly one ``.gguf`` beside its weights came as one; for any other source the build says so in one line.
- ``gguf:type=q8_0|q5_1|q5_0|q4_1|q4_0|f16|f32``: the fp32 folder written as a GGUF by the ``gguf`` package and
  quantized by its numpy quantizers (:mod:`.writer`). K-quants need llama.cpp's ``llama_model_quantize``, which the
  xllamacpp wheel does not export, so they are not offered.

The store keeps ``model.gguf`` and ``llamacpp.json``. Perplexity and latency use llama.cpp's logits of every position;
generation uses llama.cpp's own KV cache (:mod:`.runner`). Threads are the run's threads.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ... import env
from ...errors import RecipeError
from ...tasks import CAUSAL_LM
from ..base import BuildContext, Param, Recipe, Variant, read_json, write_json
from . import binding
from .writer import TYPES, write_gguf

GGUF_FILE, INFO_FILE = "model.gguf", "llamacpp.json"
SHIPPED = "shipped"
AVX512_NOTE = "llama.cpp's CPU kernels in this wheel were built without AVX-512"


def _check(device: str) -> str | None:
    if device != "cpu":
        return "the lab runs llama.cpp's CPU build (the xllamacpp CPU wheel); choose device cpu."
    return binding.missing_reason()


def shipped_gguf(folder: Path) -> Path | None:
    """The GGUF a model folder came as: the one ``.gguf`` file beside its weights (None if there is none)."""
    found = sorted(Path(folder).glob("*.gguf"))
    if len(found) > 1:
        raise RecipeError(f"gguf: '{Path(folder).name}' holds {len(found)} .gguf files ({', '.join(p.name for p in found[:3])}); "
                          "the lab cannot tell which one it shipped as.")
    return found[0] if found else None


def _types(path: Path) -> dict[str, int]:
    import gguf

    counts: dict[str, int] = {}
    for tensor in gguf.GGUFReader(str(path)).tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    return counts


def build_gguf(ctx: BuildContext, params: dict, out: Path) -> dict:
    kind = params["type"]
    shipped = shipped_gguf(ctx.source.path)
    if kind == SHIPPED:
        if shipped is None:
            raise RecipeError(f"gguf: '{ctx.source.name}' did not come as a GGUF (no .gguf beside its weights); "
                              "write one from its weights with gguf:type=q8_0 (or q4_0, q4_1, q5_0, q5_1, f16).")
        ctx.say(0.2, f"copying the shipped {shipped.name}")
        shutil.copyfile(shipped, out / GGUF_FILE)
        types, notes = _types(out / GGUF_FILE), [f"The GGUF the model shipped as ({shipped.name}), run exactly as shipped."]
    else:
        ctx.say(0.1, f"writing a {kind.upper()} GGUF with the gguf package")
        done = write_gguf(ctx.source.path, out / GGUF_FILE, kind, tokenizer_from=shipped, name=ctx.source.name)
        types = done["types"]
        notes = [f"Written from the fp32 weights by the gguf package and quantized to {kind.upper()} by its numpy quantizer"
                 + (" (tokenizer copied from the shipped GGUF)." if shipped else "."), *done["notes"]]
    summary = ", ".join(f"{k} x{v}" for k, v in sorted(types.items(), key=lambda kv: -kv[1]))
    write_json(out / INFO_FILE, {"type": kind, "tensor_types": types, "notes": [*notes, f"Tensors: {summary}."]})
    return {}


def _isa_notes() -> list[str]:
    info = binding.system_info()
    notes = [f"llama.cpp from xllamacpp {binding.version()} ({info})."]
    flags = env.cpu_info()["flags"]
    if "avx512f" in flags and "AVX512" not in info.upper():
        notes.append(f"{AVX512_NOTE}: this CPU has {', '.join(f for f in flags if f.startswith('avx512'))}, which they leave unused.")
    return notes


def load_gguf(ctx: BuildContext, params: dict, art: Path) -> Variant:
    from .runner import Runner

    info = read_json(art / INFO_FILE)
    runner = Runner(art / GGUF_FILE, ctx.threads)
    policy = os.environ.get("OMP_WAIT_POLICY")
    notes = [*info.get("notes", []), *_isa_notes(),
             f"{runner.threads} thread(s); OpenMP wait policy {policy or 'default (spin, then sleep), as llama.cpp is deployed'}"
             + (": its threads sleep between ops, which slows llama.cpp's decoding severalfold." if policy and policy.upper() == "PASSIVE" else ".")]
    return Variant(name="", task=ctx.task, run=runner.run, param_bytes=runner.model.size, notes=notes, device="cpu", module=runner,
                   decoder=runner.decoder)


RECIPES = [
    Recipe(
        "gguf",
        "llama.cpp (prebuilt xllamacpp wheel) on a GGUF: the one the model shipped as, or one written and quantized here by the gguf package",
        build_gguf, load_gguf,
        params=(
            Param("type", SHIPPED, (SHIPPED, *TYPES),
                  "shipped: the model's own GGUF as it is; otherwise the weights written as that GGML type (K-quants need llama.cpp's "
                  "llama_model_quantize, which the xllamacpp wheel does not export)"),
        ),
        tasks=(CAUSAL_LM,), check=_check,
    ),
]
