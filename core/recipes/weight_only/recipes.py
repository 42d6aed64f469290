"""The weight-only recipes: absmax (symmetric) and zero-point (asymmetric) round-to-nearest int8 and packed int4,
per tensor, channel or group, dequantized to float32 at load, so only the file shrinks. The rounding, its formulas
and the stored format are core/recipes/weight_codec.py. By default only Linear / GPT-2 Conv1D weights are quantized;
``scope=all`` quantizes every floating-point parameter (LayerNorms, embeddings, biases), the common mistake, to show
its cost.
"""

from __future__ import annotations

from pathlib import Path

from ..base import BuildContext, Param, Recipe
from ..torch_common import torch_variant
from ..weight_codec import GRANULARITIES, GROUP_SIZES, load_dequantized, quantize_weights_to_file


def _builder(scheme: str, bits: int):
    def build(ctx: BuildContext, params: dict, out: Path) -> dict:
        return quantize_weights_to_file(ctx, out, scheme, params["granularity"], params["scope"], bits, int(params["group_size"]))

    return build


def _loader(scheme: str, bits: int):
    def load(ctx: BuildContext, params: dict, art: Path):
        model = load_dequantized(ctx, art).to(ctx.device)
        stored = "packed two per byte" if bits == 4 else "int8"
        notes = [f"Weight-only int{bits}: weights are stored {stored} + scales and dequantized to float32 at load, "
                 "so memory and speed match fp32; only the file shrinks."]
        if params["scope"] == "all":
            notes.append("scope=all also rounds LayerNorm, embedding and bias parameters: the usual mistake, shown here for its cost.")
        if params["granularity"] == "tensor":
            notes.append("One scale per tensor: a single outlier weight squeezes all others into few levels; "
                         "granularity=channel or group is usually much better.")
        elif params["granularity"] == "group":
            extra = " and an integer zero point" if scheme == "zeropoint" else ""
            notes.append(f"One scale per group of {params['group_size']} weights in a row: closer to the weights than per channel, "
                         f"at the cost of one float32 scale{extra} per group on disk.")
        return torch_variant("", ctx.task, model, device=ctx.device, notes=notes)

    return load


def _params(granularity: str):
    return (
        Param("granularity", granularity, GRANULARITIES, "one scale per tensor, per output channel, or per group of group_size weights in a row"),
        Param("group_size", "32", GROUP_SIZES, "weights per group (granularity=group only)"),
        Param("scope", "linear", ("linear", "all"), "quantize Linear/Conv1D weights only, or every parameter"),
    )


RECIPES = [
    Recipe("absmax-int8", "Symmetric absmax round-to-nearest int8 weights (scale = 127 / max|W|)",
           _builder("absmax", 8), _loader("absmax", 8), params=_params("channel")),
    Recipe("zeropoint-int8", "Asymmetric zero-point round-to-nearest int8 weights (scale = 255 / (max - min))",
           _builder("zeropoint", 8), _loader("zeropoint", 8), params=_params("channel")),
    Recipe("absmax-int4", "Symmetric absmax round-to-nearest int4 weights (scale = 7 / max|W|), packed two per byte",
           _builder("absmax", 4), _loader("absmax", 4), params=_params("group")),
    Recipe("zeropoint-int4", "Asymmetric zero-point round-to-nearest int4 weights (scale = 15 / (max - min)), packed two per byte",
           _builder("zeropoint", 4), _loader("zeropoint", 4), params=_params("group")),
]
