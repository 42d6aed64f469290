"""Hardware targets, and one comparison run across several of them.

* With no cluster configured there is one target, ``local``: this machine, through the local launcher, and a
  comparison's report is exactly the one-machine report.
* With ``QLAB_RAY_ADDRESS`` set, the targets are the cluster's nodes; the node this process runs on is marked
  ``this_machine`` and ``local`` names it. A comparison runs on every chosen node at once (each node measures
  one variant at a time), and the report gains ``hardware`` (each target's probe, status, machine, reference)
  and ``recommended_by_hardware``; every result row carries ``"hardware": <target id>``.
* A node lost mid-run marks its target "node lost during <variant> (<phase>)"; the others' results are kept.
  Nothing is retried on another node, since the result would carry the wrong hardware.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..errors import QlabError
from . import ray_cluster, wire
from .hardware import LOCAL_ID, local_target
from .launcher import LocalLauncher, launcher_for
from .wire import Cancelled
from .worker import Worker

# a target's status in the report, from the kind of error that ended it (core.execution.wire)
STATUS = {wire.CANCELLED: "cancelled", wire.NODE_LOST: "lost", wire.USER: "failed", wire.BUG: "failed"}


def cluster_configured() -> bool:
    return ray_cluster.configured_address() is not None


def list_targets() -> list[dict]:
    """Every target this lab can measure on (see the module docstring). One-line QlabError if the cluster is unreachable."""
    if not cluster_configured():
        return [local_target()]
    return ray_cluster.cluster_targets()


def parse_selection(text: str | list | None) -> list[str]:
    if text is None:
        return [LOCAL_ID]
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    out = []
    for item in items:
        item = str(item).strip()
        if item and item not in out:
            out.append(item)
    return out or [LOCAL_ID]


def choose(selection: list[str], targets: list[dict], allowed: list[str] | None = None) -> list[dict]:
    """The targets named by ``selection`` (ids, names, ``local`` or ``all``), in that order; one-line errors otherwise."""
    by_key: dict[str, dict] = {}
    for t in targets:
        by_key.setdefault(t["id"], t)
        by_key.setdefault(t["name"], t)
        if t.get("this_machine") or t["id"] == LOCAL_ID:
            by_key.setdefault(LOCAL_ID, t)
    chosen: list[dict] = []
    for key in selection:
        if key == "all":
            picked = [t for t in targets if t.get("alive")]
        elif key in by_key:
            picked = [by_key[key]]
        else:
            known = ", ".join(t["id"] for t in targets) or "none"
            raise QlabError(f"Unknown hardware target '{key}'; the targets are: {known} (or all).")
        for t in picked:
            if t not in chosen:
                chosen.append(t)
    if not chosen:
        raise QlabError("No alive hardware target to run on; list them with: python -m core hardware.")
    dead = [t["id"] for t in chosen if not t.get("alive")]
    if dead:
        raise QlabError(f"Hardware target {dead[0]} is not alive; list the targets with: python -m core hardware.")
    if allowed is not None:
        refused = [t["id"] for t in chosen if t["id"] not in allowed and t["name"] not in allowed and not (t.get("this_machine") and LOCAL_ID in allowed)]
        if refused:
            raise QlabError(f"Hardware target {refused[0]} is not offered on this hosted lab; choose among: {', '.join(allowed) or 'none'}.")
    return chosen


def run_across(config, chosen: list[dict], *, worker: Worker, progress: Callable[[dict], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> dict:
    """Run ``worker`` on the comparison ``config`` (an EvalConfig: ``data``, ``data_bytes``, ``model``, ``variants``)
    on every chosen target; returns the (merged) report dict. The engine's worker is ``core.engine.evaluate.WORKER``.

    One target without a cluster: today's one-machine report (the local launcher). Otherwise each target runs in
    its own thread through its launcher (core.execution.launcher), and the reports are merged (see the module
    docstring). Raises Cancelled on request.
    """
    if len(chosen) == 1 and not chosen[0].get("node_id"):
        return LocalLauncher().run(chosen[0], config, None, worker=worker, progress=progress, should_stop=should_stop)

    data_bytes = config.data_bytes
    if data_bytes is None and config.data:   # a path on this machine means nothing on another node: send the bytes
        data_bytes = Path(config.data).read_bytes()
        config = replace(config, data=Path(config.data).name)
    outcomes: dict[str, dict] = {}
    lock = threading.Lock()
    cancelled = threading.Event()

    def stop() -> bool:
        if should_stop and should_stop():
            cancelled.set()
        return cancelled.is_set()

    def work(target: dict) -> None:
        def relay(event: dict) -> None:
            if progress:
                with lock:
                    progress(dict(event, target=target["id"]))
        try:
            report = launcher_for(target).run(target, config, data_bytes, worker=worker, progress=relay, should_stop=stop)
            outcome = {"status": "ok", "report": report}
        except Exception as err:  # noqa: BLE001 - one target's failure (a bug included) must not lose the others' results
            error = wire.error_from_exception(err)
            outcome = {"status": STATUS[error.kind], "error": error.message}
        with lock:
            outcomes[target["id"]] = outcome
            if progress:
                progress({"target": target["id"], "variant": config.model, "phase": "done", "fraction": 1.0, "index": 0,
                          "total": len(config.variants),
                          "message": f"{target['name']}: {outcome['status']}" + (f" ({outcome['error']})" if outcome.get("error") else "")})

    threads = [threading.Thread(target=work, args=(t,), daemon=True, name=f"qlab-target:{t['id']}") for t in chosen]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.5)
            stop()
    if cancelled.is_set():
        raise Cancelled("cancelled")
    return merge_reports(chosen, outcomes)


def merge_reports(chosen: list[dict], outcomes: dict[str, dict]) -> dict:
    """One report from each target's report; rows tagged with their target, failed targets kept with their reason."""
    reports = [(t, outcomes.get(t["id"], {})) for t in chosen]
    good = [(t, o["report"]) for t, o in reports if o.get("status") == "ok"]
    if not good:
        reasons = "; ".join(f"{t['name']}: {o.get('error', 'no result')}" for t, o in reports)
        raise QlabError(f"No hardware target produced a result ({reasons}).")
    base = dict(good[0][1])
    hardware, results, recommended_by = [], [], {}
    for target, outcome in reports:
        entry = {k: target.get(k) for k in ("id", "name", "node_id", "cpu", "arch", "cores", "isa", "gpu")}
        entry.update(probe=target.get("probe") or {}, status=outcome.get("status", "failed"), error=outcome.get("error"))
        report = outcome.get("report")
        if report:
            entry.update(environment=report.get("environment") or {}, reference=report.get("reference") or {},
                         elapsed_s=(report.get("settings") or {}).get("elapsed_s"))
            results += [dict(row, hardware=target["id"]) for row in report.get("results") or []]
            recommended_by[target["id"]] = report.get("recommended")
        hardware.append(entry)
    # per batch size, the recommendation is each target's own (the first target's would read as everyone's)
    base.update(results=results, hardware=hardware, recommended_by_hardware=recommended_by, recommended_by_batch={})
    base["settings"] = dict(base.get("settings") or {}, hardware=[t["id"] for t in chosen])
    return base


def lost_targets(report: dict) -> list[dict]:
    """The targets of a cross-hardware report that did not finish (lost or failed)."""
    return [t for t in report.get("hardware") or [] if t.get("status") != "ok"]
