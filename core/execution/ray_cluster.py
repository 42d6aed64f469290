"""The Ray launcher: run one comparison on one chosen node of a Ray cluster, and stream its progress back.

* ``connect()`` joins the cluster named by ``QLAB_RAY_ADDRESS`` (``auto``, ``host:port``): a TCP check first,
  so an address nobody answers at fails in seconds with one line, never a hang.
* ``cluster_targets()`` probes every alive node *on that node* (``hardware.probe`` in a zero-CPU task pinned to
  it) and names it: its ``qlab-name`` label, else its hostname plus a short node id.
* ``run_on_node()`` starts a :class:`NodeRunner` actor on the node (pinned, ``max_restarts=0``: a result must
  never carry another node's hardware). The actor takes the node's ``qlab_bench`` slot, so one comparison
  measures on a node at a time, and the host's measurement lock (nodes on one host share cores). It runs the
  worker it was given there (the engine's, ``core.engine.evaluate.WORKER``, runs ``run_evaluation``): the node builds
  variants into its own store, computes its own fp32 reference, and measures each variant in a fresh local process with the thread settings it was given. Events
  are polled back; a node that dies gives :class:`NodeLost` naming the variant and phase it was in.

Nodes run their own checkout of the lab (``scripts/join_cluster.sh`` starts them with it on ``PYTHONPATH`` and
``QLAB_CACHE_DIR`` at its store); the probe records a hash of the lab's code so a mismatch can be shown.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import socket
import threading
import time
from typing import Callable

from ..env import THREAD_VARS
from ..errors import QlabError
from ..paths import PROJECT_ROOT, store_root
from . import wire
from .machine_lock import machine_lock
from .wire import Cancelled, NodeLost
from .worker import Worker, resolve_worker

ADDRESS_ENV = "QLAB_RAY_ADDRESS"
NAME_LABEL = "qlab-name"
BENCH_RESOURCE = "qlab_bench"
CONNECT_CHECK_S = 5.0
CONNECT_TIMEOUT_S = 20.0
PROBE_TIMEOUT_S = 60.0
POLL_S = 0.5
DISPATCH_TIMEOUT_ENV = "QLAB_RAY_DISPATCH_TIMEOUT_S"
DEFAULT_DISPATCH_TIMEOUT_S = 600.0


def configured_address() -> str | None:
    return (os.environ.get(ADDRESS_ENV) or "").strip() or None


def dispatch_timeout_s() -> float:
    try:
        return max(1.0, float(os.environ.get(DISPATCH_TIMEOUT_ENV) or DEFAULT_DISPATCH_TIMEOUT_S))
    except ValueError:
        return DEFAULT_DISPATCH_TIMEOUT_S


def _check_reachable(address: str) -> None:
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise QlabError(f"{ADDRESS_ENV}={address!r} is not host:port or auto; set it like 10.0.0.5:6379.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_CHECK_S):
            pass
    except OSError as err:
        raise QlabError(f"The Ray cluster at {address} cannot be reached ({err.strerror or err.__class__.__name__}); "
                        f"check {ADDRESS_ENV} and that 'ray start --head' runs there.") from None


_CONNECT_LOCK = threading.Lock()


def connect(address: str | None = None) -> None:
    """Join the cluster (once per process). One-line QlabError when it cannot be reached."""
    import ray

    with _CONNECT_LOCK:
        if ray.is_initialized():
            return
        address = address or configured_address()
        if not address:
            raise QlabError(f"No Ray cluster is configured; set {ADDRESS_ENV} (for example auto or 10.0.0.5:6379).")
        _check_reachable(address)
        outcome: dict = {}

        def join() -> None:   # in a thread: a port that accepts but never speaks Ray would otherwise hang ray.init
            try:
                ray.init(address=address, namespace="qlab", logging_level="ERROR", log_to_driver=False, include_dashboard=False)
                outcome["ok"] = True
            except BaseException as err:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError: all "not a reachable cluster"
                outcome["error"] = err

        worker = threading.Thread(target=join, daemon=True, name="qlab-ray-connect")
        worker.start()
        worker.join(CONNECT_TIMEOUT_S)
        if worker.is_alive():
            raise QlabError(f"The Ray cluster at {address} did not answer within {CONNECT_TIMEOUT_S:.0f} s; check {ADDRESS_ENV} "
                            f"points at a Ray head (ray start --head).")
        err = outcome.get("error")
        if err is not None:
            raise QlabError(f"Could not join the Ray cluster at {address} ({wire.describe(err, 160)}); check {ADDRESS_ENV}.")


def disconnect() -> None:
    import ray

    with _CONNECT_LOCK:
        if ray.is_initialized():
            ray.shutdown()


def lab_version() -> str:
    """A short hash of the lab's code on this node, so results from different checkouts can be told apart."""
    digest = hashlib.sha256()
    for path in sorted((PROJECT_ROOT / "core").rglob("*.py")):
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _probe_here() -> dict:
    import ray

    from .hardware import probe

    info = probe()
    info["node_id"] = ray.get_runtime_context().get_node_id()
    info["lab_version"] = lab_version()
    info["store"] = os.environ.get("QLAB_CACHE_DIR") or None
    return info


def _pinned(node_id: str):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "node"


def cluster_targets(include_dead: bool = True) -> list[dict]:
    """Every node of the cluster as a target row (see hardware.target_row), alive nodes probed on themselves."""
    import ray

    from .hardware import target_row

    connect()
    probe_task = ray.remote(num_cpus=0, max_retries=0)(_probe_here)
    nodes = ray.nodes()
    alive = [n for n in nodes if n.get("Alive")]
    refs = {n["NodeID"]: probe_task.options(scheduling_strategy=_pinned(n["NodeID"])).remote() for n in alive}
    probes: dict[str, dict] = {}
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    for node_id, ref in refs.items():
        if ref in ready:
            with contextlib.suppress(Exception):
                probes[node_id] = ray.get(ref)
    driver_node = ray.get_runtime_context().get_node_id()
    rows, seen = [], set()
    for n in sorted(nodes, key=lambda n: (not n.get("Alive"), n["NodeID"] != driver_node, (n.get("Labels") or {}).get(NAME_LABEL, ""), n["NodeID"])):
        node_id, labels = n["NodeID"], n.get("Labels") or {}
        if not n.get("Alive") and not include_dead:
            continue
        info = probes.get(node_id) or {}
        host = info.get("hostname") or n.get("NodeManagerHostname") or n.get("NodeManagerAddress") or "node"
        name = labels.get(NAME_LABEL) or f"{host.split('.')[0]}-{node_id[:6]}"
        target_id = _slug(name)
        if target_id in seen:   # two nodes with one label: the node id tells them apart
            target_id = _slug(f"{name}-{node_id[:6]}")
        seen.add(target_id)
        row = target_row(target_id, name, node_id, info, alive=bool(n.get("Alive")) and bool(info))
        row["this_machine"] = node_id == driver_node
        row["bench_slot"] = BENCH_RESOURCE in (n.get("Resources") or {})
        row["address"] = n.get("NodeManagerAddress")
        if n.get("Alive") and not info:
            row["error"] = f"node {name} did not answer the probe within {PROBE_TIMEOUT_S:.0f} s"
        rows.append(row)
    return rows


# -- the node side ------------------------------------------------------------------------------------
class NodeRunner:
    """Runs one comparison on the node it was placed on (as a Ray actor); polled for events by the driver."""

    def __init__(self):
        self._events: list[dict] = []
        self._state, self._result, self._error = "idle", None, None   # _error: a wire.WireError once it failed or was cancelled
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def ready(self) -> dict:
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "hostname": socket.gethostname()}

    def start(self, config: dict, data_bytes: bytes | None, worker: Worker) -> bool:
        with self._lock:
            if self._state != "idle":
                return False
            self._state = "running"
        threading.Thread(target=self._run, args=(config, data_bytes, worker), daemon=True, name="qlab-node-run").start()
        return True

    def _emit(self, event: dict) -> None:
        with self._lock:
            self._events.append(dict(event))

    def _run(self, config: dict, data_bytes: bytes | None, worker: Worker) -> None:
        for key in THREAD_VARS:   # Ray sets OMP_NUM_THREADS=1 for zero-CPU actors; measure with the settings given instead
            os.environ.pop(key, None)
        try:
            run = resolve_worker(worker)
            model = config.get("model")

            def on_wait(message: str) -> None:
                self._emit({"variant": model, "index": 0, "total": len(config.get("variants") or []) or 1, "phase": "build", "fraction": 0.0,
                            "message": message})

            with machine_lock(store_root(), {"by": "cluster measurement", "model": model}, should_stop=self._stop.is_set, on_wait=on_wait):
                report = run(config, data_bytes, progress=self._emit, should_stop=self._stop.is_set)
            report["environment"] = dict(report.get("environment") or {}, **self.ready())   # where it really ran
            with self._lock:
                self._result, self._state = report, "done"
        except Exception as err:  # noqa: BLE001 - a user error, a cancel, or a bug on the node: one line back, its traceback in the node's log
            error = wire.error_from_exception(err)
            if error.kind == wire.BUG:
                import traceback

                traceback.print_exc()
            with self._lock:
                self._error, self._state = error, "cancelled" if error.kind == wire.CANCELLED else "failed"

    def poll(self, since: int) -> dict:
        with self._lock:
            return {"events": self._events[since:], "state": self._state, "result": self._result if self._state == "done" else None,
                    **(wire.error_payload(self._error) if self._error else {})}

    def cancel(self) -> bool:
        """Stop the comparison: run_evaluation ends its worker's whole process tree at its next check."""
        self._stop.set()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with self._lock:
                if self._state != "running":
                    return True
            time.sleep(0.1)
        return False


@functools.lru_cache(maxsize=1)
def _actor_class():
    import ray

    return ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0, max_concurrency=4)(NodeRunner)


def run_on_node(target: dict, config: dict, data_bytes: bytes | None, *, worker: Worker, on_event: Callable[[dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None, dispatch_timeout: float | None = None) -> dict:
    """Run ``worker`` (a "module:function" name or a picklable callable, see core.execution.launcher) on ``config`` on
    ``target``'s node and return its report; see the module docstring."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError, RayError

    connect()
    name, node_id = target["name"], target["node_id"]
    if not target.get("bench_slot", True):
        raise QlabError(f"Node {name} offers no '{BENCH_RESOURCE}' slot, so it cannot take measurements; join it with scripts/join_cluster.sh.")
    timeout = dispatch_timeout or dispatch_timeout_s()
    actor = _actor_class().options(resources={BENCH_RESOURCE: 1}, scheduling_strategy=_pinned(node_id)).remote()
    last: dict = {}
    try:
        waited = 0.0
        ready_ref = actor.ready.remote()
        while True:   # dispatch: the node's qlab_bench slot may be busy with another comparison
            if should_stop and should_stop():
                raise Cancelled("cancelled")
            try:
                ray.get(ready_ref, timeout=min(2.0, timeout - waited))
                break
            except GetTimeoutError:
                waited += 2.0
                if waited >= timeout:
                    raise QlabError(f"Hardware target {name} could not be scheduled within {timeout:.0f} s: its '{BENCH_RESOURCE}' slot stayed busy "
                                    f"or the node left; try again later or set {DISPATCH_TIMEOUT_ENV}.") from None
                if on_event:
                    on_event({"variant": config.get("model"), "index": 0, "total": len(config.get("variants") or []) or 1, "phase": "build",
                              "fraction": 0.0, "message": f"waiting for a measurement slot on {name} ({waited:.0f} s)"})
            except RayActorError:
                raise NodeLost(f"node lost before the comparison started on {name}") from None
        if not ray.get(actor.start.remote(config, data_bytes, worker), timeout=60):
            raise QlabError(f"Hardware target {name} refused the comparison (its runner was busy).")
        since = 0
        while True:
            if should_stop and should_stop():
                with contextlib.suppress(RayError):
                    ray.get(actor.cancel.remote(), timeout=30)
                raise Cancelled("cancelled")
            try:
                state = ray.get(actor.poll.remote(since), timeout=60)
            except (RayActorError, GetTimeoutError, RayError):
                where = f"during {last.get('variant')} ({last.get('phase')})" if last.get("variant") else "before its first result"
                raise NodeLost(f"node lost {where}") from None
            for event in state["events"]:
                last = event
                if on_event:
                    on_event(event)
            since += len(state["events"])
            if state["state"] == "done":
                return state["result"]
            if state["state"] in ("failed", "cancelled"):
                error = wire.error_in(state) or wire.WireError(wire.CANCELLED if state["state"] == "cancelled" else wire.BUG, "the comparison failed")
                wire.raise_error(error, bug=lambda message: QlabError(f"The comparison failed on {name} ({message}); see that node's Ray logs."))
            time.sleep(POLL_S)
    finally:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
