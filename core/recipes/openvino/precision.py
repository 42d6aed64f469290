"""The inference precision OpenVINO's CPU plugin compiles an IR in: the lab's ``precision`` parameter, what this CPU's
plugin offers, and the notes that say what was compiled and why.

The precision is a compile option (``INFERENCE_PRECISION_HINT``): it does not change the stored IR, so the parameter is
applied at load (``Param.at_load``) and every precision of a variant loads the same store entry. The plugin is lenient
where the lab must not be: asked for f16 on a CPU without FP16 it quietly compiles its default (bf16 on AVX-512), and
asked for bf16 on a CPU it cannot emulate bf16 on it quietly compiles f32. So the lab refuses f16 where the plugin does
not offer it, and every variant's notes say the precision read back from the compiled model.
"""

from __future__ import annotations

import functools

from ... import env
from ...errors import RecipeError
from ..base import Param
from ..openvino_quiet import openvino

PRECISIONS = ("f32", "bf16", "f16")   # the lab's names are OpenVINO's own (ov.Type.f32.get_type_name(), ...)
CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}   # each one's name in the CPU plugin's OPTIMIZATION_CAPABILITIES
# evidence of the family's slow-variant cause (see __init__): bf16 compiled on a CPU that has no bf16 instructions
BF16_EMULATED_NOTE = "OpenVINO bf16 is emulated here"
BF16_NOT_COMPILED_NOTE = "OpenVINO's CPU plugin does not run bf16 on this CPU"


def precision_param(default: str = "f32") -> Param:
    return Param("precision", default, PRECISIONS,
                 "the CPU plugin's inference precision for the float parts (INFERENCE_PRECISION_HINT, applied when the IR is compiled: "
                 "the stored IR is the same for every value); f16 only where the plugin offers FP16", at_load=True)


@functools.lru_cache(maxsize=1)
def capabilities() -> tuple[str, ...]:
    """The CPU plugin's ``OPTIMIZATION_CAPABILITIES`` on this machine (e.g. FP32, BF16, FP16, INT8)."""
    return tuple(str(c) for c in openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def offered(caps: tuple[str, ...] | list[str]) -> list[str]:
    """The lab's precisions the plugin lists among ``caps`` (f32 always)."""
    return [p for p in PRECISIONS if p == "f32" or CAPABILITY[p] in caps]


def unoffered_reason(precision: str | None, caps: tuple[str, ...] | list[str] | None = None) -> str | None:
    """Why ``precision`` cannot be compiled here (f16 where the CPU plugin does not offer FP16: it would quietly compile
    something else), in one line listing what this CPU offers; None where it can."""
    if precision != "f16":
        return None
    caps = capabilities() if caps is None else tuple(caps)
    if CAPABILITY["f16"] in caps:
        return None
    return (f"precision=f16 needs FP16 in OpenVINO's CPU plugin, which this CPU does not offer: it offers precision "
            f"{', '.join(offered(caps))} (OPTIMIZATION_CAPABILITIES: {', '.join(caps) or 'none'}).")


def refuse_params(params: dict) -> str | None:
    """Recipe.refuse for the recipes with a ``precision`` parameter."""
    return unoffered_reason(params.get("precision"))


def refuse_unoffered(label: str, precision: str | None) -> None:
    """At load: a one-line RecipeError where ``precision`` cannot be compiled here (see :func:`unoffered_reason`)."""
    reason = unoffered_reason(precision)
    if reason:
        raise RecipeError(f"Variant '{label}' cannot run here: {reason}")


def precision_notes(recipe: str, asked: str | None, default: str | None, compiled: str, *, fixed: bool = False,
                    native_bf16: bool | None = None, isa: str | None = None) -> tuple[str, list[str]]:
    """(words for the plugin note, extra notes): the precision compiled (read back from the compiled model), whether it
    was the lab's choice, and where bf16 is emulated or not compiled, why.

    ``asked`` is the precision passed at compile time (None: OpenVINO's default), ``default`` the recipe's own
    (``fixed``: the only one it has)."""
    if asked is None:
        words = f"{compiled} inference precision (OpenVINO's default on this CPU, not the lab's choice)"
    elif fixed:
        words = f"{compiled} inference precision (the lab's choice: {recipe} is compiled in {asked})"
    elif asked == default:
        words = f"{compiled} inference precision (the lab's choice: {recipe}'s default)"
    else:
        words = f"{compiled} inference precision (precision={asked} in the variant's spec; {recipe}'s default is {default})"
    if asked is not None and compiled != asked:
        words = words.replace(f"{compiled} inference precision (", f"{compiled} inference precision, not the {asked} asked for (", 1)
    extra = []
    native = env.has_native_bf16() if native_bf16 is None else native_bf16
    isa = env.isa_words() if isa is None else isa
    if compiled == "bf16" and not native:
        extra.append(f"{BF16_EMULATED_NOTE}: this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16; {isa}), so the CPU plugin "
                     "keeps bf16 tensors but converts them to f32 around every AVX-512 multiply-add: the f32 arithmetic plus the "
                     "conversions, slower than f32 and with bf16's rounding. On a CPU with avx512_bf16 or AMX the same variant runs natively.")
    elif asked == "bf16" and compiled != "bf16":
        extra.append(f"{BF16_NOT_COMPILED_NOTE} ({isa}): asked for bf16, it compiled {compiled}, so this variant measures "
                     f"{compiled} arithmetic, not bf16's.")
    return words, extra
