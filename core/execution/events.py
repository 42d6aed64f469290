"""One progress-event format, one phase table and one cancellation error for every tier of the lab.

A progress event is a flat JSON object::

    {"variant": "onnx-int8", "index": 1, "total": 3, "phase": "latency", "fraction": 0.42,
     "message": "latency batch 8 x seq 64", "target": "local"}

``fraction`` is the overall fraction of the whole job (0..1, never moving backwards) when the event comes from the
job level, or the fraction within ``phase`` when it comes from a measuring worker. ``target`` is present when a
comparison runs on several hardware targets. Between processes, events travel as text lines that start with
:data:`EVENT_PREFIX`; any other line (a library's print) is ignored.
"""

from __future__ import annotations

import json

from ..errors import QlabError

EVENT_PREFIX = "@@qlab "

# A variant's work, split by phase: (start, end) of the phase within that variant's share of the job.
PHASES = {"build": (0.0, 0.1), "load": (0.0, 0.1), "quality": (0.1, 0.35), "latency": (0.35, 1.0), "done": (1.0, 1.0)}


class Cancelled(QlabError):
    """The work was stopped on request; every tier raises and catches this one class."""


def phase_start(phase: str | None) -> float | None:
    """Where a variant's own progress bar stands once ``phase`` has begun (None for an unknown phase)."""
    span = PHASES.get(phase or "")
    return None if span is None else (span[1] if phase == "done" else span[0] + 0.5 * (span[1] - span[0]))


def encode(event: dict) -> str:
    """One protocol line (with its newline)."""
    return EVENT_PREFIX + json.dumps(event, default=str) + "\n"


def decode(line: str) -> dict | None:
    """The event on a protocol line, or None for any other line."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
