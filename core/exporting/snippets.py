"""The load-and-run code of an exported variant, and the README.md around it.

One snippet per artifact kind and task (each recipe family declares its kinds' snippets in its own folder), each at most
15 lines, importing only the runtime the variant needs
(onnxruntime + tokenizers + numpy for ONNX; torch + transformers, plus safetensors or torchao where the recipe
needs them, for torch variants) and never the lab. Each one defines ``texts`` on one line (the tests swap in
held-out inputs there) and ends with the task's output in ``OUTPUT[task]``: sentence embeddings (mean pooling over
the attention mask, then L2 normalisation, as the lab measures them) or logits.
"""

from __future__ import annotations

from pathlib import Path

from ..recipes import registry as _registry
from ..tasks import all_tasks

MAX_LINES = 15
OUTPUT = {t.name: t.snippet_output for t in all_tasks()}   # what each task's snippet ends with (the export tests read it)
# the snippet of each artifact kind, and the pip distributions it imports: declared by the recipe families (each family's
# exporters, core/recipes/<family>/), gathered by the registry
SNIPPETS, RUNTIMES = _registry.SNIPPETS, _registry.RUNTIMES


def snippet(kind: str, task: str, details: dict) -> str:
    """The load-and-run code for an artifact ``kind`` on ``task``; ``details`` fills in max_length, engine, names."""
    return SNIPPETS[kind](task, details)


def snippet_from_readme(text: str) -> str | None:
    """The first ```python block of an exported README.md."""
    start = text.find("```python\n")
    if start < 0:
        return None
    end = text.find("\n```", start + 10)
    return text[start + 10:end] if end > 0 else None


def snippet_of(rec: dict) -> str | None:
    """The load-and-run snippet in the README.md of an export record (core.storage.exports; None if the folder is gone)."""
    try:
        return snippet_from_readme((Path(rec["folder"]) / "README.md").read_text(encoding="utf-8"))
    except (OSError, KeyError, TypeError):
        return None


# -- README.md -------------------------------------------------------------------------------------
def _measured_lines(meta: dict) -> list[str]:
    m = meta.get("measured")
    if not m:
        return [f"Not measured on this machine yet: {meta.get('measured_note') or 'no saved comparison has this variant.'}"]
    lines = [f"From the lab's run `{m['run_id'][:8]}` ({m.get('created', '')}) on {m.get('cpu', '?')} "
             f"({', '.join(m.get('instruction_sets') or []) or 'no notable instruction sets'}), {m.get('threads', '?')} threads, "
             f"data: {m.get('data', '?')}.", ""]
    lines += ["| batch | p50 ms (end to end, geometric mean over lengths) |", "|---|---|"]
    lines += [f"| {b} | {v:.2f} |" for b, v in (m.get("p50_ms_by_batch") or {}).items() if v is not None]
    lines += ["", f"Size on disk in the lab: {m.get('size_bytes', 0) / 2**20:.1f} MB."]
    quality = ", ".join(f"{k} {v:.4f}" for k, v in (m.get("quality") or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    ref = ", ".join(f"{k} {v:.4f}" for k, v in (m.get("reference_quality") or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    if quality:
        lines.append(f"Quality: {quality}" + (f" (fp32 on the same data: {ref})." if ref else "."))
    lines.append("Timings belong to that machine; they do not transfer to other hardware.")
    return lines


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB"


def readme(meta: dict, code: str) -> str:
    """The exported folder's README.md: what it is, how to install and run it, what the lab measured, the files."""
    runtime = meta["runtime"]
    post = meta["postprocessing"]
    files = "\n".join(f"- `{name}` ({_size(info['bytes'])})" for name, info in sorted(meta["files"].items()))
    return "\n".join([
        f"# {meta['model']} · `{meta['variant']['spec']}` ({meta['task']})",
        "",
        f"Exported by Quantization Lab on {meta['created']}. {meta['variant']['summary']}.",
        f"This folder runs on its own with {', '.join(runtime)}; it never imports the lab.",
        "",
        "## Load and run",
        "",
        "```bash",
        "pip install -r requirements.txt",
        "```",
        "",
        "Run from inside this folder (paths are relative):",
        "",
        "```python",
        code,
        "```",
        "",
        f"Post-processing: {post['description']}",
        "",
        "## What the lab measured",
        "",
        *_measured_lines(meta),
        "",
        "## Files",
        "",
        files,
        "- `qlab.json`: the variant and its parameters, the source fingerprint, input and output names and dtypes, "
        "the post-processing, the library versions and the measured summary",
        "",
    ])
