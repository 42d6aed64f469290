"""A made-up recipe family, to prove that a family is one folder plus one line in ``core.recipes.registry.FAMILIES``.

Everything the lab needs is declared here and nowhere else: two recipes with a parameter and an availability check,
build (a JSON artifact) and load (a runnable variant), an exporter with its snippet and runtime, a chart colour and a
slow-variant cause. ``tests/test_families.py`` registers it the way the registry line would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.recipes.base import BuildContext, Param, Recipe, Variant, read_json, write_json
from core.recipes.export_kit import copy_file, texts_line
from core.recipes.family import Exporter, Family, NoteCause
from core.tasks import CLASSIFICATION

COLOR = "#123456"
SLOW_NOTE = "Fake int8: the fake kernel sleeps on purpose, so expect it slower than fp32."
CAUSE = NoteCause("fake-kernel", "the fake kernel sleeps on every call", "fake kernel")


def build(ctx: BuildContext, params: dict, out: Path) -> dict:
    write_json(out / "fake.json", {"scale": float(params["scale"])})
    return {"scale": float(params["scale"])}


def load(ctx: BuildContext, params: dict, art: Path) -> Variant:
    scale = read_json(Path(art) / "fake.json")["scale"]
    labels = int(ctx.config().num_labels)

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.full((ids.shape[0], labels), scale, dtype=np.float32)

    return Variant("", ctx.task, run, param_bytes=8, notes=[SLOW_NOTE])


def write(job, out: Path) -> dict:
    copy_file(job.art / "fake.json", out / "fake.json")
    return {"apply_on_load": "nothing: every logit is the scale", "scale": job.art_json("fake.json")["scale"]}


def snippet(task: str, d: dict) -> str:
    return "\n".join(["import json", "import numpy as np", texts_line(), 'scale = json.load(open("fake.json"))["scale"]',
                      'logits = np.full((len(texts), len(json.load(open("qlab.json"))["postprocessing"]["labels"])), scale, dtype=np.float32)'])


RECIPES = (
    Recipe("fake-int8", "A fake int8 recipe: every logit is its scale", build, load,
           params=(Param("scale", "1.0", help="the constant logit", number=(0.0, 10.0)),), tasks=(CLASSIFICATION,)),
    Recipe("fake-int2", "A fake 2-bit recipe that needs hardware nobody has", build, load, tasks=(CLASSIFICATION,),
           check=lambda device: "fake-int2 needs a fake accelerator."),
)

FAMILY = Family(
    name="fake",
    recipes=RECIPES,
    exporters={"fake-int8": Exporter("fake", write, snippet, ("numpy",))},
    not_exported={"fake-int2": "fake 2-bit weights"},
    colors={"fake-int8": COLOR},
    causes=(CAUSE,),
)
