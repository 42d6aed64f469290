"""The launcher interface: run one comparison on one hardware target and return its report.

    launcher_for(target).run(target, config, data_bytes, progress=..., should_stop=...) -> report dict

Two implementations, one contract (the split optimum-benchmark makes between inline/process/torchrun launchers):

* :class:`LocalLauncher`: this machine, no services. ``core.evaluate.run_evaluation`` starts each build and
  measurement in a fresh process through ``core.execution.local`` (own session, tree kill, dies with its parent).
* :class:`RayLauncher`: a node of the Ray cluster (``core.execution.ray_cluster.run_on_node``): the same
  ``run_evaluation`` runs there, inside an actor pinned to the node, and its events are polled back.

Both pass on progress events in the one wire format of ``core.execution.wire`` and raise its ``Cancelled`` when
``should_stop()`` turns true; a Ray node that dies raises its ``NodeLost``; errors that cross from a worker or a node
are raised again by ``wire.raise_error``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable, Protocol


class Launcher(Protocol):
    def run(self, target: dict, config, data_bytes: bytes | None, *, progress: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> dict: ...


class LocalLauncher:
    def run(self, target: dict, config, data_bytes: bytes | None, *, progress=None, should_stop=None) -> dict:
        from dataclasses import replace

        from ..evaluate import run_evaluation

        if data_bytes is not None and config.data_bytes is None:
            config = replace(config, data_bytes=data_bytes)
        return run_evaluation(config, progress=progress, should_stop=should_stop)


class RayLauncher:
    def run(self, target: dict, config, data_bytes: bytes | None, *, progress=None, should_stop=None) -> dict:
        from . import ray_cluster

        payload = {k: v for k, v in asdict(config).items() if k != "data_bytes"}
        return ray_cluster.run_on_node(target, payload, data_bytes, on_event=progress, should_stop=should_stop)


def launcher_for(target: dict) -> Launcher:
    """Ray for a cluster node (it has a node id), the local launcher for this machine outside a cluster."""
    return RayLauncher() if target.get("node_id") else LocalLauncher()
