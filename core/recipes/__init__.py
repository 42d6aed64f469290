"""Quantization recipes. One registry (``registry.RECIPES``); one module per family beside it."""

from .base import BuildContext, Param, Recipe, Variant, VariantSpec, parse_spec
from .registry import RECIPES, REFERENCE, available, expand, get_recipe, resolve

__all__ = ["BuildContext", "Param", "Recipe", "Variant", "VariantSpec", "parse_spec", "RECIPES", "REFERENCE", "available", "expand", "get_recipe", "resolve"]
