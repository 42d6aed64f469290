"""The one registry of quantization recipes: every name the CLI and UI accept is here."""

from __future__ import annotations

from ..errors import RecipeError
from . import mixed, onnx_genai, onnx_rt, torch_native, weight_only
from .base import Recipe, VariantSpec, parse_spec

RECIPES: dict[str, Recipe] = {r.name: r for r in (*torch_native.RECIPES, *weight_only.RECIPES, *onnx_rt.RECIPES, *mixed.RECIPES, *onnx_genai.RECIPES)}
REFERENCE = "fp32"


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise RecipeError(f"Unknown variant '{name}'; known variants: {', '.join(RECIPES)}.") from None


def resolve(spec: str | VariantSpec) -> tuple[Recipe, dict, str]:
    """Parse and check a variant spec: returns (recipe, full parameters, canonical label)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    recipe = get_recipe(spec.recipe)
    params = recipe.resolve_params(spec.as_dict())
    defaults = recipe.defaults()
    label = ":".join([recipe.name] + [f"{k}={v}" for k, v in params.items() if v != defaults[k]])
    return recipe, params, label


def available(task: str | None = None, device: str = "cpu") -> list[str]:
    """Names of every recipe that can run here for ``task``."""
    return [name for name, r in RECIPES.items() if r.unavailable_reason(device, task) is None]


def expand(names: str | list[str], task: str, device: str = "cpu") -> list[str]:
    """'all' -> every available recipe for the task; otherwise the comma-separated specs, checked."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n and n.strip()]
    if items == ["all"]:
        return available(task, device)
    if not items:
        raise RecipeError("No variants given: list some (e.g. fp32,onnx-int8) or say all.")
    labels = []
    for item in items:
        recipe, _, label = resolve(item)
        reason = recipe.unavailable_reason(device, task)
        if reason:
            raise RecipeError(f"Variant '{label}' cannot run here: {reason}")
        if label not in labels:
            labels.append(label)
    return labels
