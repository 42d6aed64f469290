"""What a recipe family declares about itself, in its own folder, so that adding one touches that folder and one line of
``registry.FAMILIES``.

A :class:`Family` holds its recipes (parameters, availability, build and load: :class:`~core.recipes.base.Recipe`), how
each recipe is exported and the load-and-run snippet that goes with it (:class:`Exporter`), the chart colour of each
recipe, and the structured causes (:class:`Cause`) that explain why one of its variants is slower than fp32 here.
The lab's tables (``core.exporting.export.EXPORTERS``, ``core.exporting.snippets.SNIPPETS`` / ``RUNTIMES``, the charts' ``RECIPE_COLORS``
and the slow-variant causes) are read from the families by ``registry``; nothing outside the folder names a recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .base import Recipe


@dataclass(frozen=True)
class Cause:
    """Why a variant is slower than fp32 here: a stable ``code`` (for code and tests) and the ``words`` a person reads."""

    code: str
    words: str


@dataclass(frozen=True)
class NoteCause:
    """A cause a family attaches to its variants through a note it writes itself.

    A variant's results carry only its notes across the worker boundary and into saved reports (old reports too), so
    the evidence of a cause is the note its own family wrote at build or load time: a note that contains ``evidence``
    (any case). The family keeps the note's wording and its cause side by side; nothing outside it reads note text.
    With ``quote``, the cause's words end with that note (e.g. "a fallback: <the note>").
    """

    code: str
    words: str
    evidence: str
    quote: bool = False

    def find(self, notes: Iterable[str]) -> Cause | None:
        needle = self.evidence.lower()
        hit = next((n for n in notes if needle in str(n).lower()), None)
        if hit is None:
            return None
        return Cause(self.code, self.words + (str(hit).rstrip(".") if self.quote else ""))


def causes_from_notes(rules: Iterable[NoteCause], notes: Iterable[str]) -> list[Cause]:
    """The causes ``rules`` find in ``notes``, in the rules' order, each explanation once."""
    notes = list(notes)
    found: list[Cause] = []
    for rule in rules:
        cause = rule.find(notes)
        if cause and all(c.words != cause.words for c in found):
            found.append(cause)
    return found


# -- export -----------------------------------------------------------------------------------------
SnippetFn = Callable[[str, dict], str]          # (task, details) -> the load-and-run code, at most snippets.MAX_LINES lines
WriteFn = Callable[[object, Path], dict]        # (core.exporting.export.Job, folder) -> the recipe block of qlab.json
IoFn = Callable[[Path], tuple[list[dict], list[dict]]]   # the written folder -> (inputs, outputs) as qlab.json lists them


@dataclass(frozen=True)
class Exporter:
    """How a recipe's stored artifact becomes a folder that runs without the lab."""

    kind: str                                   # the artifact kind: names the snippet (core.exporting.snippets.SNIPPETS) and its runtime
    write: WriteFn                              # writes the weights into the folder; returns the recipe block of qlab.json
    snippet: SnippetFn                          # the load-and-run code for this kind
    runtime: tuple[str, ...]                    # the pip distributions the snippet imports (requirements.txt)
    io: IoFn | None = None                      # inputs/outputs read from the written folder; None: the torch model's (task's names)
    needs_fast_tokenizer: bool = False          # True: refuse a model without tokenizer.json (the snippet uses the tokenizers library)
    refuse: Callable[[dict], str | None] = lambda params: None   # why these parameters cannot be exported yet, or None


@dataclass(frozen=True)
class Family:
    """One recipe/backend family: everything the lab needs to know about it, declared in its own folder."""

    name: str
    recipes: tuple[Recipe, ...]
    exporters: dict[str, Exporter] = field(default_factory=dict)   # recipe name -> how it is exported
    not_exported: dict[str, str] = field(default_factory=dict)     # recipe name -> why it has no export yet (refused before any build)
    colors: dict[str, str] = field(default_factory=dict)           # recipe name -> chart colour (recipes without one get a spare colour)
    causes: tuple[NoteCause, ...] = ()                             # slow-variant causes its variants' notes give evidence of
    explain: Callable[[object, dict], list[Cause]] | None = None   # (result, environment) -> causes; default: ``causes`` in the notes
    causal_layout: str | None = None   # how its causal-LM artifacts are laid out (e.g. KV cache as graph inputs): part of their store key
    loads_transformers: bool = True    # its variants load a transformers model (the worker imports the modeling code before timing the load)
    # the distributions its variants depend on: the one declaration of the libraries a run uses. Their installed versions
    # go into its variants' store keys, the saved-report key, the report's environment and export manifests
    # (registry.library_versions); the reference family's are added to every variant's, since every variant is built from it
    versions: tuple[str, ...] = ()
    # what its runtime reports about this machine (devices, kernels): the hardware probe's ``runtimes``; free info as
    # core.reporting.fields.INFO defines it (scalars, short lists, objects nested at most INFO_DEPTH deep)
    probe: Callable[[], dict] | None = None
    # the measuring worker's environment for its variants, over the lab's defaults (None removes a variable): a runtime
    # that must run as it is deployed, e.g. llama.cpp's OpenMP threads, which the lab's PASSIVE wait policy slows 3x
    worker_env: dict[str, str | None] = field(default_factory=dict)

    def slow_causes(self, result, environment: dict) -> list[Cause]:
        """Why ``result`` (a core.reporting.results.VariantResult of one of this family's recipes) may be slower than fp32 here."""
        if self.explain is not None:
            return list(self.explain(result, environment))
        return causes_from_notes(self.causes, result.notes or [])

    def check(self) -> None:
        """Every recipe is exported or says why not, exactly once; colours and exporters name only its own recipes."""
        names = [r.name for r in self.recipes]
        both = set(self.exporters) & set(self.not_exported)
        missing = set(names) - set(self.exporters) - set(self.not_exported)
        foreign = (set(self.exporters) | set(self.not_exported) | set(self.colors)) - set(names)
        if both or missing or foreign or len(set(names)) != len(names):
            raise ValueError(f"recipe family '{self.name}' is inconsistent: exported and refused {sorted(both)}, "
                             f"neither {sorted(missing)}, not its recipes {sorted(foreign)}")
