"""A test-only family whose outputs go wrong at one chosen sequence length, so the per-cell output check (issue 27)
is tested on every CPU, not only where a runtime's default breaks a graph (OpenVINO's bf16 on AMX).

``faulty-fp32:at=32`` is PyTorch fp32 (built and loaded by the fp32 recipe itself) whose outputs at exactly ``at``
tokens come back with the hidden dimensions reversed (embeddings: cosine far from fp32's) or the logits negated
(classification and causal LMs: other labels, other next tokens). Registered through ``QLAB_PLUGIN_FAMILIES``
(core/recipes/registry.py), so the measuring workers have it too.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from core.recipes.base import Param, Recipe
from core.recipes.family import Family
from core.recipes.pytorch.recipes import RECIPES as TORCH_RECIPES
from core.tasks import CAUSAL_LM, CLASSIFICATION, EMBEDDING

FP32 = next(r for r in TORCH_RECIPES if r.name == "fp32")


def load(ctx, params: dict, art):
    variant = FP32.load(ctx, {}, art)
    at, inner = int(params["at"]), variant.run

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = np.asarray(inner(ids, mask), dtype=np.float32)
        if ids.shape[1] != at:
            return out
        return out[..., ::-1].copy() if ctx.task == EMBEDDING else -out

    return replace(variant, run=run, decoder=None, no_cache_reason="the faulty test family has no KV cache",
                   notes=[f"Faulty on purpose: outputs at exactly {at} tokens are corrupted (a test family)."])


RECIPES = (
    Recipe("faulty-fp32", "fp32 whose outputs are corrupted at one sequence length (tests only)", FP32.build, load,
           params=(Param("at", "32", help="the sequence length whose outputs are corrupted", number=(2, 4096)),),
           tasks=(EMBEDDING, CLASSIFICATION, CAUSAL_LM)),
)

FAMILY = Family(name="faulty", recipes=RECIPES, not_exported={"faulty-fp32": "a test family"}, colors={"faulty-fp32": "#ff00aa"})
