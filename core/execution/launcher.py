"""The launcher interface: run one worker on one hardware target and return its report.

    launcher_for(target).run(target, config, data_bytes, worker=..., progress=..., should_stop=...) -> report dict

A launcher runs whatever worker it is given, so ``execution/`` never imports the engine that uses it:

* ``worker`` is a callable ``worker(config, data_bytes, *, progress, should_stop) -> dict``, or the importable
  ``"module:function"`` name of one (``core.execution.worker``) (a name is what travels to another node, whose own checkout imports it). The
  engine passes its own: ``core.engine.evaluate.WORKER``.
* ``config`` is picklable: an object with ``to_dict()`` (its fields without the data's bytes), or a plain dict.
  ``data_bytes`` (an upload) travels apart from it.

Two implementations, one contract (the split optimum-benchmark makes between inline/process/torchrun launchers):

* :class:`LocalLauncher`: this machine, no services: the worker runs here. ``core.engine.evaluate``'s worker starts each
  build and measurement in a fresh process through ``core.execution.local`` (own session, tree kill, dies with its
  parent).
* :class:`RayLauncher`: a node of the Ray cluster (``core.execution.ray_cluster.run_on_node``): the same worker runs
  there, inside an actor pinned to the node, and its events are polled back.

Both pass on progress events in the one wire format of ``core.execution.wire`` and raise its ``Cancelled`` when
``should_stop()`` turns true; a Ray node that dies raises its ``NodeLost``; errors that cross from a worker or a node
are raised again by ``wire.raise_error``.
"""

from __future__ import annotations

from typing import Callable, Protocol

from . import ray_cluster
from .worker import Worker, resolve_worker


def plain_config(config) -> dict:
    """The config as a plain dict for another process (its ``to_dict()`` when it has one: the data's bytes travel apart)."""
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


class Launcher(Protocol):
    def run(self, target: dict, config, data_bytes: bytes | None, *, worker: Worker, progress: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> dict: ...


class LocalLauncher:
    def run(self, target: dict, config, data_bytes: bytes | None, *, worker: Worker, progress=None, should_stop=None) -> dict:
        return resolve_worker(worker)(config, data_bytes, progress=progress, should_stop=should_stop)


class RayLauncher:
    def run(self, target: dict, config, data_bytes: bytes | None, *, worker: Worker, progress=None, should_stop=None) -> dict:
        return ray_cluster.run_on_node(target, plain_config(config), data_bytes, worker=worker, on_event=progress, should_stop=should_stop)


def launcher_for(target: dict) -> Launcher:
    """Ray for a cluster node (it has a node id), the local launcher for this machine outside a cluster."""
    return RayLauncher() if target.get("node_id") else LocalLauncher()
