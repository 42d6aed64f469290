"""Default calibration texts per task: the bundled samples, with a built-in fallback."""

from __future__ import annotations

import csv
from pathlib import Path

from .tasks import get_task

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
FALLBACK = [
    "The central bank raised interest rates by a quarter point on Tuesday.",
    "Researchers found a new species of frog in the rainforest.",
    "The striker scored twice in the second half to win the match.",
    "Return the number of items in the container.",
    "Quantization maps floating-point values onto a small set of integers.",
    "A short sentence.",
    "Leaders met in Geneva to discuss the ceasefire and humanitarian aid for the region.",
    "The function raises ValueError if the argument is negative.",
]


def default_texts(task: str, limit: int = 64) -> list[str]:
    path = SAMPLES / get_task(task).calibration_file
    texts: list[str] = []
    try:
        if path.suffix == ".txt":
            texts = [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
        else:
            with open(path, newline="", encoding="utf-8") as fh:
                texts = [row["text"] for row in csv.DictReader(fh) if row.get("text")]
    except OSError:
        pass
    return (texts or FALLBACK)[:limit]
