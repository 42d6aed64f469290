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


# -- which texts a run's calibrated recipes (static int8, mixed, OpenVINO int8) calibrate on ---------------------
SOURCES = {
    "sample": "the bundled calibration sample (held out from the texts quality is measured on)",
    "data": "this run's own texts (the first 64: in-domain, but the same texts quality is measured on, which can flatter static int8)",
}
DEFAULT_SOURCE = "sample"
RUN_TEXTS_LIMIT = 64


def check_source(source: str) -> None:
    """A one-line QlabError for a calibration source other than those in SOURCES."""
    from .errors import QlabError

    if source not in SOURCES:
        raise QlabError(f"Unknown calibration source '{str(source)[:40]}': use one of {', '.join(SOURCES)}.")


def run_texts(source: str, texts: list[str]) -> list[str]:
    """The texts a run hands its calibrated recipes: none for ``sample`` (each recipe then takes ``default_texts``),
    the run's first 64 non-empty texts for ``data``. Raises a one-line QlabError for any other source."""
    check_source(source)
    if source == "sample":
        return []
    return [t for t in texts if isinstance(t, str) and t.strip()][:RUN_TEXTS_LIMIT]


def texts_for(ctx) -> list[str]:
    """What a calibrated recipe calibrates on: the run's texts when it was given them, else the task's sample."""
    return ctx.calibration_texts or default_texts(ctx.task)


def source_words(ctx) -> str:
    """Where ``texts_for(ctx)`` came from, for a variant's notes."""
    return "this run's own texts" if ctx.calibration_texts else "the bundled calibration sample"
