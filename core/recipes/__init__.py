"""Quantization recipes, by family: one folder per family (``pytorch/``, ``weight_only/``, ``onnxrt/``, ``genai/``), each
declaring a :class:`~core.recipes.family.Family`, and one registry (``registry.FAMILIES``, ``registry.RECIPES``) beside them.

The modules' names from before the families had folders stay importable (``core.recipes.onnx_rt``, ``torch_native``,
``mixed``, ``onnx_genai``): they are the same module objects as the family folders' ``recipes`` / ``mixed`` modules.
"""

import sys

from .base import BuildContext, Param, Recipe, Variant, VariantSpec, parse_spec
from .family import Cause, Exporter, Family, NoteCause
from .genai import recipes as onnx_genai
from .onnxrt import mixed
from .onnxrt import recipes as onnx_rt
from .pytorch import recipes as torch_native
from .registry import FAMILIES, RECIPES, REFERENCE, available, expand, family_of, get_recipe, resolve

for _module, _old in ((onnx_genai, "onnx_genai"), (mixed, "mixed"), (onnx_rt, "onnx_rt"), (torch_native, "torch_native")):
    sys.modules.setdefault(f"{__name__}.{_old}", _module)

__all__ = ["BuildContext", "Param", "Recipe", "Variant", "VariantSpec", "parse_spec", "Cause", "Exporter", "Family", "NoteCause", "FAMILIES", "RECIPES",
           "REFERENCE", "available", "expand", "family_of", "get_recipe", "resolve"]
