"""The weight-only family: round-to-nearest absmax / zero-point int8 and packed int4 weights, dequantized to float32 at load.

The rounding itself is core/recipes/weight_codec.py (shared with the PyTorch family's torchao-int8).
"""

from __future__ import annotations

from ..family import Exporter, Family, NoteCause
from .export import RUNTIME, refuse_groupwise, weight_only_snippet, write_weight_only
from .recipes import RECIPES

_EXPORTER = Exporter("weight-only", write_weight_only, weight_only_snippet, RUNTIME, refuse=refuse_groupwise)

FAMILY = Family(
    name="weight-only",
    recipes=tuple(RECIPES),
    exporters={"absmax-int8": _EXPORTER, "zeropoint-int8": _EXPORTER},
    not_exported={"absmax-int4": "packed 4-bit weight-only weights", "zeropoint-int4": "packed 4-bit weight-only weights"},
    colors={
        "absmax-int8": "#ff7f0e",
        "zeropoint-int8": "#bcbd22",
        "absmax-int4": "#c25700",     # 4-bit siblings: a darker shade of their int8 recipe's colour
        "zeropoint-int4": "#8a8b10",
    },
    # the load note ("Weight-only int8: ... dequantized to float32 at load") is the evidence
    causes=(NoteCause("weight-only-dequantized", "weight-only int8 is dequantized to fp32 at load, so it computes exactly like fp32 (the gap is noise)",
                      "Weight-only"),),
    versions=("safetensors",),   # its packed weights' file format (torch itself: the reference family's)
)

__all__ = ["FAMILY", "RECIPES"]
