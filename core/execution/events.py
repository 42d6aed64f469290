"""The progress event and the phase table of every tier of the lab (its line format and Cancelled: core.execution.wire).

A progress event is a flat JSON object::

    {"variant": "onnx-int8", "index": 1, "total": 3, "phase": "latency", "fraction": 0.42,
     "message": "latency batch 8 x seq 64", "target": "local"}

``fraction`` is the overall fraction of the whole job (0..1, never moving backwards) when the event comes from the
job level, or the fraction within ``phase`` when it comes from a measuring worker. ``target`` is present when a
comparison runs on several hardware targets. Between processes, events travel as text lines that start with
:data:`~core.execution.wire.EVENT_PREFIX`; any other line (a library's print) is ignored. The line format, errors
and results are the one wire format of ``core.execution.wire``.
"""

from __future__ import annotations

# The event line itself (prefix, encode, decode) and Cancelled are part of the one wire format (core.execution.wire);
# they are importable from here too, where they were first defined.
from .wire import EVENT_PREFIX, Cancelled, decode, encode  # noqa: F401

# A variant's work, split by phase: (start, end) of the phase within that variant's share of the job.
PHASES = {"build": (0.0, 0.1), "load": (0.0, 0.1), "quality": (0.1, 0.35), "latency": (0.35, 1.0), "done": (1.0, 1.0)}


def phase_start(phase: str | None) -> float | None:
    """Where a variant's own progress bar stands once ``phase`` has begun (None for an unknown phase)."""
    span = PHASES.get(phase or "")
    return None if span is None else (span[1] if phase == "done" else span[0] + 0.5 * (span[1] - span[0]))
