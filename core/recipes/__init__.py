"""Quantization recipes, by family: one folder per family (``pytorch/``, ``weight_only/``, ``onnxrt/``, ``genai/``,
``llamacpp/``, ``openvino/``), each declaring a :class:`~core.recipes.family.Family`, and one registry
(``registry.FAMILIES``, ``registry.RECIPES``) beside them. What two families share lives in the modules at this level
(``onnx_common``, ``torch_common``, ``decoders``, ``export_kit``, ``export_graph``, ``onednn_isa``, ``onednn_kernels``),
so families never import each other.
"""

from .base import BuildContext, Param, Recipe, Variant, VariantSpec, parse_spec
from .family import Cause, Exporter, Family, NoteCause
from .registry import FAMILIES, RECIPES, REFERENCE, available, expand, family_of, get_recipe, resolve

__all__ = ["BuildContext", "Param", "Recipe", "Variant", "VariantSpec", "parse_spec", "Cause", "Exporter", "Family", "NoteCause", "FAMILIES", "RECIPES",
           "REFERENCE", "available", "expand", "family_of", "get_recipe", "resolve"]
