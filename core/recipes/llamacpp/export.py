"""Exporting a llama.cpp variant: ``model.gguf`` as stored, and a snippet that needs only the ``xllamacpp`` wheel.

The binding's Python API is llama.cpp's server: it tokenizes the text with the GGUF's own tokenizer and returns
log-probabilities for the tokens it generates, not for the prompt. So the snippet asks for one greedy token per
text with every vocabulary entry's log-probability: ``logits`` is then the next-token log-softmax after each text
([texts, vocab]; its argmax is the lab's next token).
"""

from __future__ import annotations

from pathlib import Path

from ...tasks import get_task
from ..export_kit import copy_file, texts_line
from .recipes import GGUF_FILE, INFO_FILE

RUNTIME = ("xllamacpp",)


def write_gguf_export(job, out: Path) -> dict:
    from .binding import Model

    copy_file(job.art / GGUF_FILE, out / GGUF_FILE)
    info = job.art_json(INFO_FILE)
    model = Model(out / GGUF_FILE)
    n_vocab, n_ctx = model.n_vocab, model.n_ctx_train
    model.close()
    return {"apply_on_load": "nothing: llama.cpp runs the GGUF as it is (xllamacpp.Server)", "gguf": GGUF_FILE, "type": info.get("type"),
            "tensor_types": info.get("tensor_types", {}), "n_vocab": n_vocab, "n_ctx_train": n_ctx, "notes": info.get("notes", [])}


def gguf_io(folder: Path) -> tuple[list[dict], list[dict]]:
    return ([{"name": "prompt", "dtype": "str", "shape": ["batch"]}],
            [{"name": "logits", "dtype": "float32", "shape": ["batch", "vocab"], "what": "next-token log-probabilities after each text"}])


def gguf_snippet(task: str, d: dict) -> str:
    """xllamacpp only: its server scores the next token of each text over the whole vocabulary (the recipe is for causal
    LMs; the result is named as the task names its output)."""
    name = get_task(task).snippet_output
    return "\n".join([
        "import json, xllamacpp as xlc",
        texts_line(),
        'n_vocab = json.load(open("qlab.json"))["recipe"]["n_vocab"]',
        "params = xlc.CommonParams()",
        f'params.model.path, params.n_ctx, params.n_parallel, params.warmup = "{GGUF_FILE}", {max(256, int(d["max_length"]) + 1)}, 1, False',
        "server = xlc.Server(params)",
        f"{name} = []  # next-token log-probabilities [texts, vocab] (the server scores generated tokens only)",
        "for text in texts:",
        '    out = server.handle_completions({"prompt": text, "n_predict": 1, "n_probs": n_vocab, "temperature": 0.0})',
        "    row = [float('-inf')] * n_vocab",
        '    for p in out["choices"][0]["logprobs"]["content"][0]["top_logprobs"]:',
        '        row[p["id"]] = p["logprob"]',
        f"    {name}.append(row)",
        f"print([max(range(n_vocab), key=row.__getitem__) for row in {name}])  # each text's next token id",
    ])
