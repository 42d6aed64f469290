"""The one registry of recipe families, and of the recipes they declare: every name the CLI and UI accept is here.

Each family is one folder (``pytorch/``, ``weight_only/``, ``onnxrt/``, ``genai/``, ``llamacpp/``, ``openvino/``) whose ``FAMILY`` declares its recipes,
exporters and snippets, chart colours and slow-variant causes; adding a family is its folder and one line in
``FAMILIES``. The tables the rest of the lab reads (``RECIPES`` here, ``core.exporting.export.EXPORTERS``, ``core.exporting.snippets.SNIPPETS``
and ``RUNTIMES``, ``core.charts.RECIPE_COLORS``) are filled from the families by :func:`install` and never written by hand.
"""

from __future__ import annotations

import dataclasses
import importlib
import os

from ..errors import RecipeError
from . import genai, llamacpp, onnxrt, openvino, openvino_genai, pytorch, weight_only
from .base import Recipe, VariantSpec, parse_spec
from .family import Cause, Exporter, Family

FAMILIES: list[Family] = [
    pytorch.FAMILY,
    weight_only.FAMILY,
    onnxrt.FAMILY,
    genai.FAMILY,
    llamacpp.FAMILY,
    openvino.FAMILY,
    openvino_genai.FAMILY,
]
REFERENCE = "fp32"

# filled in place by install(): modules that imported them see the same dicts
RECIPES: dict[str, Recipe] = {}
FAMILY_OF: dict[str, Family] = {}            # recipe name -> its family
EXPORTERS: dict[str, Exporter] = {}          # recipe name -> how it is exported
NOT_EXPORTED: dict[str, str] = {}            # recipe name -> why it has no export yet
SNIPPETS: dict[str, object] = {}             # artifact kind -> its snippet function (task, details) -> code
RUNTIMES: dict[str, tuple[str, ...]] = {}    # artifact kind -> the pip distributions its snippet imports
COLORS: dict[str, str] = {}                  # recipe name -> chart colour


def install(families: list[Family]) -> None:
    """Fill the registry's tables from ``families`` (in their order: it is the order of ``python -m core variants``)."""
    tables = {"recipes": {}, "family": {}, "exporters": {}, "not_exported": {}, "snippets": {}, "runtimes": {}, "colors": {}}
    for family in families:
        family.check()
        for recipe in family.recipes:
            if recipe.name in tables["recipes"]:
                raise ValueError(f"recipe '{recipe.name}' of family '{family.name}' is declared by '{tables['family'][recipe.name].name}' too")
            tables["recipes"][recipe.name] = dataclasses.replace(recipe, family=family.name)   # the family's one name
            tables["family"][recipe.name] = family
        for name, exporter in family.exporters.items():
            known = tables["snippets"].get(exporter.kind)
            if known is not None and (known is not exporter.snippet or tables["runtimes"][exporter.kind] != exporter.runtime):
                raise ValueError(f"artifact kind '{exporter.kind}' of family '{family.name}' is declared with another snippet or runtime elsewhere")
            tables["exporters"][name] = exporter
            tables["snippets"][exporter.kind] = exporter.snippet
            tables["runtimes"][exporter.kind] = exporter.runtime
        tables["not_exported"].update(family.not_exported)
        tables["colors"].update(family.colors)
    for table, values in zip((RECIPES, FAMILY_OF, EXPORTERS, NOT_EXPORTED, SNIPPETS, RUNTIMES, COLORS), tables.values()):
        table.clear()
        table.update(values)


PLUGINS_VAR = "QLAB_PLUGIN_FAMILIES"   # comma-separated importable modules, each with a FAMILY, registered after the lab's own


def plugin_families() -> list[Family]:
    """The families of the modules named in ``QLAB_PLUGIN_FAMILIES`` (a runtime kept outside the lab's tree, or a
    test's own family). Workers inherit the variable, so a plug-in's variants build and run there as well."""
    out = []
    for name in [n.strip() for n in os.environ.get(PLUGINS_VAR, "").split(",") if n.strip()]:
        try:
            family = importlib.import_module(name).FAMILY
        except (ImportError, AttributeError) as err:
            raise ImportError(f"{PLUGINS_VAR} names '{name}', which is not an importable module with a FAMILY ({err}).") from None
        out.append(family)
    return out


install([*FAMILIES, *plugin_families()])


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise RecipeError(f"Unknown variant '{name}'; known variants: {', '.join(RECIPES)}.") from None


def family_of(variant: str) -> Family | None:
    """The family of a variant label or recipe name ('onnx-int8:ops=all' -> the ONNX Runtime family); None if unknown."""
    return FAMILY_OF.get(str(variant).split(":", 1)[0])


def worker_env(spec: str, env: dict) -> dict:
    """``env`` with the variable overrides of ``spec``'s family (Family.worker_env) and of its parameters
    (``Param.env``: e.g. ``isa=avx512_core_vnni`` caps oneDNN) applied."""
    recipe, params, _ = resolve(spec)
    family = family_of(recipe.name)
    overrides = dict(family.worker_env) if family is not None else {}
    for p in recipe.params:
        if p.env is not None:
            overrides.update(p.env(params[p.name]))
    if not overrides:
        return env
    out = dict(env)
    for name, value in overrides.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def slow_causes(result, environment: dict) -> list[Cause]:
    """Why ``result`` (a core.reporting.results.VariantResult) may be slower than fp32 here, as its own family explains it."""
    family = family_of(result.variant)
    return family.slow_causes(result, environment) if family else []


def installed_version(distribution: str) -> str | None:
    """The installed version of a pip distribution (None when it is not installed): the one reader of versions."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def declared_libraries(variants=None) -> tuple[str, ...]:
    """The distributions the families of ``variants`` (labels or recipe names, a list or 'a,b') declare
    (Family.versions), the reference family's first (every variant is built from its model). ``None``, or a list
    naming a group such as 'all' or an unknown name: every family's (a key then errs on the side of a rebuild)."""
    if isinstance(variants, str):
        variants = [v.strip() for v in variants.split(",") if v.strip()]
    if not variants or any(family_of(v) is None for v in variants):
        families = list(FAMILIES)
    else:
        families = [FAMILY_OF[REFERENCE]] + [f for f in (family_of(v) for v in variants) if f is not None]
    names: dict[str, None] = {}
    for family in families:
        names.update(dict.fromkeys(family.versions))
    return tuple(names)


def library_versions(variants=None) -> dict[str, str]:
    """{distribution: installed version} of every library the families of ``variants`` declare (see
    :func:`declared_libraries`; ``None``: all families). The one source of the versions in store keys, the saved-report
    key, a report's environment, a hardware probe and export manifests."""
    out = {}
    for name in declared_libraries(variants):
        version = installed_version(name)
        if version is not None:
            out[name] = version
    return out


def runtime_probes() -> dict:
    """What each family's runtime reports about this machine ({family: {...}}), for the hardware probe; a runtime that
    cannot be asked says why instead."""
    out = {}
    for family in FAMILIES:
        if family.probe is not None:
            try:
                out[family.name] = family.probe()
            except Exception as err:  # noqa: BLE001 - a runtime missing or failing here is a fact about this machine
                out[family.name] = {"error": f"{err.__class__.__name__}: {err}"}
    return out


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
        recipe, params, label = resolve(item)
        reason = recipe.unavailable_reason(device, task, params)
        if reason:
            raise RecipeError(f"Variant '{label}' cannot run here: {reason}")
        if label not in labels:
            labels.append(label)
    return labels


def whatif_notes(result, results, batch_sizes: list[int], unit: str = "ms") -> list[str]:
    """For a variant whose label differs from another one in the run only by a parameter that changes its worker's
    environment (``Param.env``: e.g. ``isa=avx512_core_vnni``), its time against that one's at every batch size:
    the what-if's answer in words ("1.40x the time of openvino-int8 at batch 32 (33.05 ms vs 23.57 ms p50)")."""
    try:
        recipe, params, _ = resolve(result.variant)
    except RecipeError:   # a label this registry does not know (an old report): no what-if to state
        return []
    env_params = [p for p in recipe.params if p.env is not None and params[p.name] != p.default]
    if not env_params:
        return []
    by_label = {r.variant: r for r in results if not r.error}
    base = dict(params, **{p.name: p.default for p in env_params})
    defaults = recipe.defaults()
    base_label = ":".join([recipe.name] + [f"{k}={v}" for k, v in base.items() if v != defaults[k]])
    other = by_label.get(base_label)
    if other is None:
        return []
    parts = []
    for b in batch_sizes:
        mine, theirs = result.speed_at(b), other.speed_at(b)
        if mine and theirs:
            parts.append(f"{mine / theirs:.2f}x the time of {base_label} at batch {b} ({mine:.2f} {unit} vs {theirs:.2f} {unit} p50)")
    what = ", ".join(f"{p.name}={params[p.name]}" for p in env_params)
    return [f"What-if {what}: " + "; ".join(parts) + "."] if parts else []
