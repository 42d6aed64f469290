"""The llama.cpp family: Llama-family causal LMs as GGUF files, run by the prebuilt ``xllamacpp`` wheel (no compiler).

One recipe, ``gguf``: the GGUF the model shipped as (``type=shipped``, the default) or one written here from the fp32
weights by the ``gguf`` package (``type=q8_0``, ``q4_0``, ...). llama.cpp computes the logits of every position
(perplexity) and generates with its own KV cache; its artifacts hold no graph, so they need no causal layout key.
"""

from __future__ import annotations

from ..family import Exporter, Family, NoteCause
from .export import RUNTIME, gguf_io, gguf_snippet, write_gguf_export
from .probe import llamacpp_probe
from .recipes import AVX512_NOTE, RECIPES

CAUSES = (
    NoteCause("llamacpp-no-avx512", "the xllamacpp wheel's llama.cpp kernels were built for AVX2 and leave this CPU's AVX-512 unused", AVX512_NOTE),
)

FAMILY = Family(
    name="llama.cpp",
    recipes=tuple(RECIPES),
    exporters={"gguf": Exporter("gguf", write_gguf_export, gguf_snippet, RUNTIME, io=gguf_io)},
    colors={"gguf": "#6a3d9a"},
    causes=CAUSES,
    loads_transformers=False,
    versions=("xllamacpp", "gguf"),   # the runtime and the writer and quantizers of its files
    probe=llamacpp_probe,
    # llama.cpp's CPU backend forks OpenMP threads for every op of every token: with the lab's OMP_WAIT_POLICY=PASSIVE
    # they fall asleep between ops and smollm2 decodes 2.9x slower (35 vs 12 ms/token, its own server, same machine);
    # it runs as deployed, with OpenMP's default policy (spin, then sleep)
    worker_env={"OMP_WAIT_POLICY": None},
)
