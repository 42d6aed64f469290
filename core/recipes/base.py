"""What a recipe is, what it builds, and the runnable variant it hands back.

A recipe has a stable name, parameters with defaults, an availability check that says why
it cannot run here, a ``build`` step that writes its artifact (safetensors / ONNX / JSON) into a
folder, and a ``load`` step that turns that folder into a runnable :class:`Variant`.
Every variant has the same call: token ids and attention mask in, one float32 array out
(the last hidden state for embedders, logits for classifiers and causal LMs).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import RecipeError
from ..tasks import TASKS

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class Param:
    name: str
    default: str
    choices: tuple[str, ...] = ()
    help: str = ""
    number: tuple[float, float] | None = None   # (low, high) for a numeric parameter
    # applied when the stored artifact is loaded (a compile option, e.g. OpenVINO's inference precision), not when it is
    # built: it stays out of the store key, so every value loads the same stored entry
    at_load: bool = False
    # the worker environment this value needs before any library loads (e.g. oneDNN's ISA cap), applied by
    # core.recipes.registry.worker_env; None: the parameter needs none
    env: Callable[[str], dict] | None = None
    refuse: Callable[[str], str | None] | None = None   # why this value cannot run here (a CPU feature it lacks), or None
    note: Callable[[str], str | None] | None = None     # what the value does, in the loaded variant's notes (None: nothing to say)
    offered: Callable[[], list[str]] | None = None      # the choices that can run on this machine, for a picker (None: all of them)
    suggestions: tuple[str, ...] = ()                   # values a picker offers for a parameter without fixed choices

    def options(self) -> list[str]:
        """What a picker offers here: the choices this machine can run (when the parameter knows), else its choices, else
        its suggestions; empty for a value to type."""
        return list(self.offered()) if self.offered is not None else list(self.choices or self.suggestions)

    def check(self, recipe: str, value: str) -> str:
        if self.choices and value not in self.choices:
            raise RecipeError(f"'{recipe}' parameter {self.name}={value} is not allowed; choose one of {', '.join(self.choices)}.")
        if self.number:
            low, high = self.number
            try:
                ok = low <= float(value) <= high
            except ValueError:
                ok = False
            if not ok:
                raise RecipeError(f"'{recipe}' parameter {self.name}={value} must be a number from {low:g} to {high:g}.")
        return value


@dataclass
class BuildContext:
    """What a build or load step may use: the source, its fp32 model (loaded on demand) and calibration texts."""

    source: object                      # core.inputs.sources.Source
    device: str = "cpu"
    threads: int | None = None
    calibration_texts: list[str] = field(default_factory=list)
    max_length: int = 128
    progress: ProgressFn | None = None
    # ``with ctx.stored_variant("onnx-fp32") as entry:`` an entry of the model store a build may start from, verified
    # (a damaged copy is rebuilt first) and leased while the block runs; ``entry`` (a core.storage.store.StoreEntry) is None when
    # the store does not hold it. Set by core.engine.variants.get_variant; None for a build outside the store.
    stored_variant: Callable[[str], AbstractContextManager] | None = None
    _loaded: object = None
    _tokenizer: object = None
    _config: object = None

    @property
    def task(self) -> str:
        return self.source.task

    def loaded(self):
        """The fp32 model and tokenizer (eager attention, so exports and traces are clean); only builds need it."""
        if self._loaded is None:
            from ..inputs.sources import load_model

            self._loaded = load_model(self.source)
            self._tokenizer = self._loaded.tokenizer
        return self._loaded

    def tokenizer(self):
        """The tokenizer alone: loading a stored variant must not load the fp32 model too."""
        if self._tokenizer is None:
            from ..inputs.sources import load_tokenizer

            self._tokenizer = load_tokenizer(self.source)
        return self._tokenizer

    def config(self):
        if self._config is None:
            from transformers import AutoConfig

            self._config = self._loaded.model.config if self._loaded else AutoConfig.from_pretrained(str(self.source.path), trust_remote_code=False)
        return self._config

    def say(self, fraction: float, message: str) -> None:
        if self.progress:
            self.progress(fraction, message)


@dataclass
class Variant:
    """A runnable compressed (or reference) model."""

    name: str                      # the spec, e.g. "dynamic-int8:engine=x86"
    task: str
    run: Callable[[np.ndarray, np.ndarray], np.ndarray]
    param_bytes: int
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"
    module: object = None          # the torch module, where there is one (weights page, generation)
    sync: Callable[[], None] = lambda: None
    decoder: Callable[[], object] | None = None   # causal LMs: makes a fresh KV-cache decoder (core.recipes.decoders)
    no_cache_reason: str = ""      # why ``decoder`` is None: generation then re-runs the whole sequence per token
    # reads which kernels its matmuls ran with, from the runtime itself (core.measure.kernels); None: not reported
    kernels: Callable[[np.ndarray, np.ndarray], dict | None] | None = None

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.run(input_ids, attention_mask)

    def new_decoder(self):
        """A decoder for greedy generation: the variant's KV-cache decoder, or one that re-runs the whole sequence."""
        from .decoders import RecomputeDecoder

        if self.decoder is not None:
            return self.decoder()
        return RecomputeDecoder(self.run, self.no_cache_reason or "this variant has no KV cache")


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    build: Callable[[BuildContext, dict, Path], dict | None]
    load: Callable[[BuildContext, dict, Path], Variant]
    params: tuple[Param, ...] = ()
    tasks: tuple[str, ...] = TASKS
    check: Callable[[str], str | None] = lambda device: None   # reason it cannot run on ``device``, or None
    refuse: Callable[[dict], str | None] = lambda params: None   # reason these parameters cannot run here (e.g. a precision the CPU lacks), or None
    deprecated: str | None = None
    reference: bool = False
    calibrated: bool = False   # its artifact depends on the run's calibration texts (their digest is part of its store key)
    # the recipe whose stored artifact this one loads (same build, same store entry), loaded its own way: e.g.
    # openvino-bf16 compiles openvino-fp32's IR in bf16. None: its own entry
    stores_as: str | None = None
    family: str = ""   # its family's one name (Family.name), filled in by core.recipes.registry.install: never declared by hand

    def defaults(self) -> dict:
        return {p.name: p.default() if callable(p.default) else p.default for p in self.params}

    def resolve_params(self, given: dict) -> dict:
        known = {p.name: p for p in self.params}
        for key in given:
            if key not in known:
                allowed = ", ".join(known) or "none"
                raise RecipeError(f"'{self.name}' has no parameter '{key}'; its parameters are: {allowed}.")
        params = self.defaults()
        for key, value in given.items():
            params[key] = known[key].check(self.name, str(value))
        return params

    def stored_params(self, params: dict) -> dict:
        """``params`` without those applied at load (:attr:`Param.at_load`): the ones its stored artifact depends on."""
        at_load = {p.name for p in self.params if p.at_load}
        return {k: v for k, v in params.items() if k not in at_load}

    def unavailable_reason(self, device: str = "cpu", task: str | None = None, params: dict | None = None) -> str | None:
        """Why it cannot run on ``device`` for ``task`` (and, given, with ``params``), or None."""
        if task and task not in self.tasks:
            return f"{self.name} does not apply to {task} models"
        if params is None:
            return self.check(device)
        by_param = (p.refuse(params[p.name]) for p in self.params if p.refuse is not None and p.name in params)
        return self.check(device) or self.refuse(params) or next((r for r in by_param if r), None)

    def describe(self, device: str = "cpu") -> dict:
        reason = self.unavailable_reason(device)
        return {
            "name": self.name,
            "family": self.family,
            "summary": self.summary,
            "params": {p.name: {"default": self.defaults()[p.name], "choices": list(p.choices), "help": p.help} for p in self.params},
            "tasks": list(self.tasks),
            "available": reason is None,
            "reason": reason,
            "deprecated": self.deprecated,
        }


@dataclass(frozen=True)
class VariantSpec:
    recipe: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return ":".join([self.recipe] + [f"{k}={v}" for k, v in self.params])

    def as_dict(self) -> dict:
        return dict(self.params)


def parse_spec(text: str) -> VariantSpec:
    """``name`` or ``name:key=value[:key=value...]`` -> VariantSpec (names checked by the registry)."""
    parts = [p.strip() for p in str(text).strip().split(":")]
    if not parts[0]:
        raise RecipeError("Empty variant name; give one like fp32, onnx-int8 or dynamic-int8:engine=x86.")
    params = []
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise RecipeError(f"Variant parameter '{part}' in '{text}' must be written key=value, e.g. dynamic-int8:engine=x86.")
        params.append((key.strip(), value.strip()))
    return VariantSpec(parts[0], tuple(params))


def write_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
