"""The one wire format between the lab's processes: progress events, errors and results, one encoder, one decoder.

Every tier speaks it: a measuring worker (``core.engine.runner``) to ``core.engine.evaluate``, a job child (``core.serving.jobs``) to
the job queue, a Ray node (``ray_cluster.NodeRunner``) to the driver, and each hardware target to
``targets.run_across``.

* **Events** travel as text lines that start with :data:`EVENT_PREFIX` followed by one flat JSON object (see
  ``core.execution.events`` for its fields and the phase table). Any other line is ignored.
* **Errors** travel as ``{"error": {"kind": ..., "message": ...}}`` (:class:`WireError`), with one of four kinds:

  ``user``       a :class:`~core.errors.QlabError`: bad input or an unavailable resource; its one-line message is
                 shown as it is
  ``bug``        anything else (a crash of the lab or of a library): ``"ClassName: first line"``; the traceback
                 stays in the log of the process where it happened
  ``cancelled``  the work was stopped on request (:class:`Cancelled`)
  ``node_lost``  a cluster node died or left while it worked (:class:`NodeLost`)

  :func:`error_from_exception` is the one encoder (it classifies by ``isinstance``), :func:`raise_error` the
  one decoder (it raises the matching exception again on the other side).
* **Results** are JSON objects; a result file or reply that failed holds only ``{"error": ...}``
  (:func:`error_payload`, :func:`error_in`).

A child process speaks it through :class:`EventStream`, which keeps a private copy of the original file
descriptor 1 for the events and points fd 1 itself at stderr, so anything printed, from Python or from a C
library, goes to the log and can never split or corrupt an event line.

Low level on purpose: this module imports ``core.errors`` only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from ..errors import QlabError, first_line
from ..paths import atomic_write_text

EVENT_PREFIX = "@@qlab "

USER, BUG, CANCELLED, NODE_LOST = "user", "bug", "cancelled", "node_lost"
KINDS = (USER, BUG, CANCELLED, NODE_LOST)
MESSAGE_LIMIT = 300   # characters of a bug's first line that cross the wire


class Cancelled(QlabError):
    """The work was stopped on request; every tier raises and catches this one class."""


class NodeLost(QlabError):
    """The node died or left the cluster while it worked for us."""


class RemoteError(RuntimeError):
    """A bug in another process, raised again here with its one-line description (the traceback is in its log)."""


# -- events ---------------------------------------------------------------------------------------------------------
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


class EventStream:
    """The event channel of a child process: events go to the original fd 1, everything else printed goes to stderr.

    Made once, first thing in a child's entry point: it keeps a private duplicate of fd 1 (not inherited by processes
    the child starts), then points fd 1 at fd 2 with ``os.dup2`` and ``sys.stdout`` at ``sys.stderr``, so a print
    from Python, a C library writing to fd 1, or a subprocess that inherits stdout all land in the log.
    ``send`` is safe to call from several threads.
    """

    def __init__(self):
        with contextlib.suppress(OSError, ValueError, AttributeError):   # a closed or missing sys.stdout
            sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()

    def send(self, event: dict) -> None:
        line = encode(event)
        with self._lock:
            self._out.write(line)
            self._out.flush()


# -- errors ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WireError:
    """An error as it crosses a process boundary: its kind (see the module docstring) and its one-line message."""

    kind: str
    message: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message}

    @classmethod
    def from_dict(cls, data) -> WireError:
        """The record in ``data``; anything unreadable is a bug (its text kept), an unknown kind too."""
        if not isinstance(data, dict):
            return cls(BUG, first_line(data or "unknown error", MESSAGE_LIMIT) or "unknown error")
        kind = data.get("kind")
        message = str(data.get("message") or "")
        if kind == CANCELLED:
            return cls(CANCELLED, message or "cancelled")
        return cls(kind if kind in KINDS else BUG, message or "unknown error")

    @property
    def for_user(self) -> bool:
        """True when the message is meant for the person as it is (a user error, a lost node)."""
        return self.kind in (USER, NODE_LOST)

    def exception(self, bug: Callable[[str], BaseException] = RemoteError) -> BaseException:
        """The exception this record stands for; ``bug`` makes the one for a bug from its message."""
        if self.kind == CANCELLED:
            return Cancelled(self.message or "cancelled")
        if self.kind == NODE_LOST:
            return NodeLost(self.message)
        if self.kind == USER:
            return QlabError(self.message)
        return bug(self.message)


def describe(err: BaseException, limit: int = MESSAGE_LIMIT) -> str:
    """``"ClassName: first line of the message"`` (only the class name when the message is empty)."""
    first = first_line(err, limit)
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def error_from_exception(err: BaseException, *, cancelled: bool = False) -> WireError:
    """The one encoder: classify ``err`` (``cancelled=True``: the work was asked to stop, whatever it raised)."""
    if cancelled or isinstance(err, Cancelled):
        return WireError(CANCELLED, "cancelled")
    if isinstance(err, NodeLost):
        return WireError(NODE_LOST, str(err))
    if isinstance(err, QlabError):
        return WireError(USER, str(err))
    return WireError(BUG, describe(err))


def raise_error(record: WireError | dict, bug: Callable[[str], BaseException] = RemoteError) -> NoReturn:
    """The one decoder: raise what ``record`` (a :class:`WireError` or its dict) stands for; see WireError.exception."""
    if not isinstance(record, WireError):
        record = WireError.from_dict(record)
    raise record.exception(bug)


# -- results --------------------------------------------------------------------------------------------------------
def error_payload(record: WireError) -> dict:
    """What a failed result file or reply holds."""
    return {"error": record.to_dict()}


def error_in(payload) -> WireError | None:
    """The error a result file or reply holds, or None when it holds a result."""
    if not isinstance(payload, dict) or "error" not in payload:
        return None
    return WireError.from_dict(payload["error"])


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write a result or error file whole (a temporary file, then a rename): the reader never sees half of it."""
    atomic_write_text(path, json.dumps(payload, default=str))
