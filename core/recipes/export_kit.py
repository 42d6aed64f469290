"""Helpers the families' exporters share: copying stored files out, and the lines every torch snippet has in common.

Nothing here names a recipe; each family's ``export.py`` composes these into its writers and snippets.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..tasks import get_task

EXAMPLE_TEXTS = ["Quantized models are smaller on disk.", "This folder runs without the lab."]


# -- files ------------------------------------------------------------------------------------------
def copy_file(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)   # contents only: nothing of the store's file (mode, times) is shared or touched


def copy_config(source_dir: Path, out: Path) -> None:
    for name in ("config.json", "generation_config.json"):
        if (source_dir / name).is_file():
            copy_file(source_dir / name, out / name)


def source_weight_files(source_dir: Path) -> list[Path]:
    files = sorted(source_dir.glob("*.safetensors"))
    index = source_dir / "model.safetensors.index.json"
    return files + ([index] if index.is_file() else [])


# -- snippet lines ----------------------------------------------------------------------------------
def texts_line() -> str:
    return f"texts = {json.dumps(EXAMPLE_TEXTS)}"


def torch_tail(task: str, d: dict, forward: str) -> list[str]:
    """Tokenize, run ``forward`` (an expression of ``enc``) and post-process, as the lab does."""
    lines = [
        f'enc = tok(texts, padding=True, truncation=True, max_length={d["max_length"]}, return_tensors="pt")',
        "with torch.inference_mode():",
    ]
    return lines + get_task(task).torch_snippet_tail(forward)


def torch_call(task: str, target: str = "model") -> str:
    t = get_task(task)
    extra = ", use_cache=False" if t.generates else ""
    return f'{target}(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]{extra}).{t.output_name}'


def torch_head(task: str, *imports: str) -> tuple[list[str], str]:
    cls = get_task(task).model_class
    return [*imports, f"from transformers import {cls}, AutoTokenizer", texts_line(), 'tok = AutoTokenizer.from_pretrained(".")'], cls
