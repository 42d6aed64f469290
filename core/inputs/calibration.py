"""The texts static int8 calibrates on: the bundled samples (or the run's own texts), with a built-in fallback, spread
over the lengths a run times.

Activation ranges are only seen where calibration texts reach: calibrated on the bundled sentences alone (10-19
MiniLM tokens), openvino-int8 gave cosine 0.990 at exactly 64 tokens and 0.980 at 128 on an AMX Xeon, in f32, where
it gave 0.996 on the natural sentences. So ``calibration_set`` joins some texts with their neighbours to about 24, 48
and 96 words (about 32, 64 and 128 tokens), interleaved so that any first N of them (static ONNX Runtime takes 32)
span those lengths too. ``CALIBRATION_SET`` names the recipe in store keys: a change rebuilds the calibrated variants.
"""

from __future__ import annotations

import csv

from ..paths import SAMPLES
from ..tasks import get_task

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
    from ..errors import QlabError

    if source not in SOURCES:
        raise QlabError(f"Unknown calibration source '{str(source)[:40]}': use one of {', '.join(SOURCES)}.")


def run_texts(source: str, texts: list[str]) -> list[str]:
    """The texts a run hands its calibrated recipes: none for ``sample`` (each recipe then takes ``default_texts``),
    the run's first 64 non-empty texts for ``data``. Raises a one-line QlabError for any other source."""
    check_source(source)
    if source == "sample":
        return []
    return [t for t in texts if isinstance(t, str) and t.strip()][:RUN_TEXTS_LIMIT]


CALIBRATION_SET = "spanning-v1"                 # how calibration_set spreads texts over lengths (part of store keys)
SPAN_WORDS = (0, 24, 0, 48, 0, 96, 24, 48)      # per position in each group of 8: 0 = the text as it is, else at least that many words


def calibration_set(texts: list[str]) -> list[str]:
    """``texts`` spread over lengths: the same number of texts, each either a text as it is or that text joined with the
    ones after it (cycling) until it has the words of its place in ``SPAN_WORDS``."""
    texts = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
    out = []
    for i, text in enumerate(texts):
        want, parts, j = SPAN_WORDS[i % len(SPAN_WORDS)], [text], i
        while want and sum(len(p.split()) for p in parts) < want and len(parts) < len(texts):
            j = (j + 1) % len(texts)
            parts.append(texts[j])
        out.append(" ".join(parts))
    return out


def job_texts(given: list[str] | None, task: str) -> list[str]:
    """What a calibrated recipe calibrates on: the run's texts when it was given them, else the task's sample, spread
    over lengths (``calibration_set``)."""
    return calibration_set(list(given or []) or default_texts(task))


def texts_for(ctx) -> list[str]:
    """``job_texts`` for a build context."""
    return job_texts(ctx.calibration_texts, ctx.task)


def source_words(ctx) -> str:
    """Where ``texts_for(ctx)`` came from, for a variant's notes."""
    return "this run's own texts" if ctx.calibration_texts else "the bundled calibration sample"   # their lengths: the runner's note
