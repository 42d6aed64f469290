"""Build-or-fetch a variant through the store, then load it: source -> recipe -> store -> Variant."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field

from ..errors import RecipeError
from ..inputs.calibration import CALIBRATION_SET
from ..inputs.sources import max_positions
from ..recipes import BuildContext, Recipe, Variant, get_recipe, resolve
from ..recipes.registry import family_of, library_versions
from ..storage.store import Lease, ModelStore, StoreEntry, damage_note, make_key
from ..tasks import get_task

RECIPE_FORMAT = 1  # bump when an artifact layout changes


@dataclass
class LoadedVariant:
    variant: Variant
    entry: StoreEntry
    load_s: float
    lease: Lease | None = field(default=None, repr=False)   # held while this object lives: the entry is not evicted under it

    @property
    def label(self) -> str:
        return self.variant.name


def stored_as(recipe_name: str, params: dict) -> tuple[Recipe, dict, str]:
    """(recipe, parameters, label) of the store entry that ``recipe_name`` with ``params`` loads: the recipe itself
    without its parameters applied at load (``Param.at_load``, e.g. a compile option), or the recipe it shares its
    artifact with (``Recipe.stores_as``). Recipes without either are their own entry, keyed as before."""
    recipe = get_recipe(recipe_name)
    kept = recipe.stored_params(params)
    if recipe.stores_as:
        recipe = get_recipe(recipe.stores_as)
        kept = recipe.stored_params(recipe.resolve_params(kept))
    defaults = recipe.defaults()
    return recipe, kept, ":".join([recipe.name] + [f"{k}={v}" for k, v in kept.items() if v != defaults[k]])


def variant_key(source, recipe_name: str, params: dict, calibration_texts: list[str] | None = None) -> str:
    """The store key of a variant's artifact: the source, the stored recipe and the parameters the artifact depends on
    (:func:`stored_as`), its family's library versions, the calibration texts' digest for calibrated recipes."""
    recipe, params, _ = stored_as(recipe_name, params)
    recipe_name, family = recipe.name, family_of(recipe.name)
    versions = library_versions([recipe_name])   # its family's libraries and the reference family's
    calib = hashlib.sha256(json.dumps([CALIBRATION_SET, calibration_texts or []]).encode()).hexdigest()[:12] if recipe.calibrated else ""
    layout = {"layout": family.causal_layout} if get_task(source.task).generates and family and family.causal_layout else {}
    return make_key(kind="variant", fingerprint=source.fingerprint, task=source.task, recipe=recipe_name, params=params, versions=versions,
                    calibration=calib, format=RECIPE_FORMAT, **layout)


def _describe(source, recipe, params: dict, label: str) -> dict:
    """The metadata a variant's store entry is indexed with."""
    return {"kind": "variant", "model": source.name, "fingerprint": source.fingerprint, "task": source.task, "recipe": recipe.name,
            "params": params, "label": label}


def _stored_variant_opener(store: ModelStore, source, ctx: BuildContext):
    """BuildContext.stored_variant for builds on ``source``: another variant's entry, if the store holds it, to start from.

    The entry is leased for the block, verified, and rebuilt in place (by its own recipe, under its own key) if damaged;
    a variant the store does not hold is not built here (None): a build only reuses what is already stored."""

    @contextlib.contextmanager
    def open_stored(spec: str):
        recipe, params, _ = resolve(spec)
        key = variant_key(source, recipe.name, params)
        if key not in store and not store.artifact_dir(key).exists():
            yield None
            return
        stored, kept, label = stored_as(recipe.name, params)
        with store.lease(key):
            entry = store.get_or_build(key, lambda tmp: stored.build(ctx, stored.resolve_params(kept), tmp) or {},
                                       _describe(source, stored, kept, label))
            yield entry

    return open_stored


def stored_entry(source, spec: str, store: ModelStore | None = None) -> StoreEntry | None:
    """The store entry of ``spec`` on ``source`` if it was built already (nothing is built here)."""
    recipe, params, _ = resolve(spec)
    return (store or ModelStore()).lookup(variant_key(source, recipe.name, params))


def is_stored(source, spec: str, store: ModelStore | None = None, calibration_texts: list[str] | None = None) -> bool:
    recipe, params, _ = resolve(spec)
    return variant_key(source, recipe.name, params, calibration_texts) in (store or ModelStore())


def get_variant(source, spec: str, *, store: ModelStore | None = None, device: str = "cpu", threads: int | None = None,
                progress=None, calibration_texts: list[str] | None = None, max_length: int = 128, context: BuildContext | None = None,
                build: bool = True) -> LoadedVariant:
    """The runnable variant for ``spec`` on ``source``: built once into the store, loaded from it every time.

    The stored entry is verified against its manifest before loading and leased for as long as the returned object
    lives. A damaged entry is dropped and rebuilt, and the variant's notes say so; with ``build=False`` nothing is
    built: a missing entry raises RecipeError and a damaged one DamagedEntry. Pass one ``context`` across several
    calls to load the fp32 model once.
    """
    store = store or ModelStore()
    recipe, params, label = resolve(spec)
    reason = recipe.unavailable_reason(device, source.task, params)   # before any build: refused parameters build nothing
    if reason:
        raise RecipeError(f"Variant '{label}' cannot run here: {reason}")
    ctx = context or BuildContext(source=source)
    ctx.device, ctx.threads, ctx.progress = device, threads, progress
    ctx.max_length = min(max_length, max_positions(ctx.config()) or max_length)
    calibration_texts = list(calibration_texts or []) if recipe.calibrated else []   # only calibrated recipes read them
    ctx.calibration_texts = calibration_texts
    ctx.stored_variant = _stored_variant_opener(store, source, ctx)
    key = variant_key(source, recipe.name, params, calibration_texts)
    stored, kept, stored_label = stored_as(recipe.name, params)   # the entry's own recipe, parameters and label
    describe = _describe(source, stored, kept, stored_label)

    def build_artifact(tmp):
        ctx.say(0.05, f"building {stored_label}" + (f" (for {label})" if stored_label != label else ""))
        return stored.build(ctx, stored.resolve_params(kept), tmp) or {}

    lease = store.lease(key)
    try:
        if build:
            entry = store.get_or_build(key, build_artifact, describe)
        else:
            entry = store.lookup(key, verify=True)
            if entry is None:
                raise RecipeError(f"Variant '{label}' of {source.name} is not built yet; build it first (run a comparison with it).")
        ctx.say(0.9, f"loading {label}")
        started = time.perf_counter()
        variant = recipe.load(ctx, params, entry.path)
        load_s = time.perf_counter() - started
    except BaseException:
        lease.release()
        raise
    variant.name = label
    for p in recipe.params:   # what a parameter's value does, where it says (e.g. an ISA cap)
        words = p.note(params[p.name]) if p.note is not None else None
        if words and words not in variant.notes:
            variant.notes.append(words)
    if recipe.deprecated and recipe.deprecated not in variant.notes:
        variant.notes.insert(0, recipe.deprecated)
    if entry.damage:
        variant.notes.insert(0, damage_note(entry.damage))
    return LoadedVariant(variant, entry, load_s, lease)
