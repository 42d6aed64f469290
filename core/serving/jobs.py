"""The machine-wide evaluation queue: heavy work runs here, never in a page's script run.

* One :class:`JobQueue` per store root per process (``get_queue()``), with one worker thread.
* Identical requests share one job: a second tab asking the same comparison gets the running job back,
  and a comparison that already finished is answered from the saved run at once (``core.storage.history``).
* One evaluation at a time on the machine: the worker takes the machine's measurement lock
  (``core.execution.machine_lock``) before it starts a job, so two Streamlit processes and the CLI serialize too;
  the others wait with their place in the queue shown. A comparison on cluster nodes takes each node's slot
  and host lock there instead.
* Each job runs in a child process (``python -m core.serving.jobs <job dir>``) started by the local launcher
  (``core.execution.local``: its own session, the whole tree ended on cancel, killed with its parent): the
  measurement is not disturbed by the web server's threads, a crash cannot take the server down, and cancelling
  can always stop it. The child reports progress as events (``core.execution.events``) on stdout and writes
  ``result.json`` or ``error.json``; its stderr (warnings, tracebacks) goes to ``<job dir>/stderr.log``, never
  to the page. Across hardware targets the child runs ``core.execution.targets.run_across``.

Uploaded data lives in the job only: it is written to ``<store root>/uploads/<job id>/`` for the child to read
and deleted when the job ends.

Hosted limits (core/access/hosting.py) are asked here: ``hosting.admit`` before a new job is queued (queue length, jobs per
visitor, with a "try again at" time), ``hosting.check_variants`` for its variants, ``hosting.deadline`` when it
starts (the job is stopped at its wall time). Failure messages never carry server paths (the log path goes to the
server's own log).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import QlabError
from ..execution import local, pool, scratch, wire
from ..execution.events import Cancelled, phase_start
from ..execution.local import KILL_AFTER_S
from ..execution.machine_lock import machine_lock, read_holder
from ..paths import atomic_write_text
from ..reporting.results import report_to_json
from ..storage import audit, history

DEFAULT_RUNNERS = {"evaluate": "core.serving.jobs:evaluate_runner", "build": "core.serving.jobs:build_runner"}
ACTIVE = ("queued", "waiting", "running")
FINISHED = ("done", "failed", "cancelled")
KEEP_FINISHED = 200
RECENT_DURATIONS = 20
LOG = logging.getLogger("qlab.jobs")


@dataclass
class Job:
    id: str
    kind: str
    key: str
    config: dict
    data_name: str | None = None
    data_bytes: bytes | None = field(default=None, repr=False)
    state: str = "queued"              # queued | waiting | running | done | failed | cancelled
    message: str = "queued"
    variants: dict = field(default_factory=dict)   # variant -> {"index", "total", "phase", "fraction", "message", "phases"}
    total: int = 0
    run_id: str | None = None
    result: dict | None = None         # build jobs: what was built
    error: str | None = None
    cached: bool = False
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    waiting_for: str | None = None     # who holds the machine lock while this job waits
    log_path: str | None = None
    subscribers: int = 1               # how many requests share this job
    overall: float = 0.0               # overall fraction done, from the events
    pid: int | None = None             # the job's process while it runs
    targets: dict = field(default_factory=dict)    # hardware target -> its fraction done (comparisons across targets)
    visitor: str | None = None         # who asked (hosting.visitor_key): the per-visitor limit counts this
    owner: str | None = None           # who owns the saved run (hosting.owner_id, or a person's key with sign-in)
    owner_email: str | None = None     # the owner's email when signed in
    timed_out: bool = False            # stopped at the wall-time limit

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def snapshot(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "key": self.key, "state": self.state, "message": self.message,
            "variants": {k: dict(v, phases=list(v.get("phases", []))) for k, v in self.variants.items()},
            "total": self.total, "run_id": self.run_id, "result": self.result, "error": self.error, "cached": self.cached,
            "created": self.created, "started": self.started, "finished": self.finished, "waiting_for": self.waiting_for,
            "cancel_requested": self.cancel_requested, "subscribers": self.subscribers, "config": dict(self.config),
            "data_name": self.data_name, "fraction": self.fraction(), "timed_out": self.timed_out, "owner": self.owner,
        }

    def fraction(self) -> float:
        return 1.0 if self.state == "done" else self.overall


def this_machine(variants) -> dict:
    """What a saved report's reuse depends on besides its config: this CPU, and the installed versions of every
    library the families of ``variants`` declare (core.recipes.registry.library_versions)."""
    from .. import env
    from ..recipes.registry import library_versions

    info = env.cpu_info()
    return {"cpu": info["model"], "cores": info["logical_cores"], "versions": library_versions(variants)}


def job_key(kind: str, config: dict, data_bytes: bytes | None) -> str:
    base = history.config_key(config, history.digest_bytes(data_bytes), machine=this_machine(config.get("variants")))
    return base if kind == "evaluate" else hashlib.sha256(f"{kind}:{base}".encode()).hexdigest()[:32]


def safe_name(name: str | None) -> str:
    name = Path(str(name or "data")).name
    stem, dot, suffix = name.rpartition(".")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem if dot else name)[:60].strip("._") or "data"
    suffix = re.sub(r"[^A-Za-z0-9]+", "", suffix)[:8] if dot else ""
    return f"{stem}.{suffix}" if suffix else stem


class JobQueue:
    """A process-wide FIFO of jobs with one worker thread; see the module docstring."""

    def __init__(self, root: str | os.PathLike | None = None, runners: dict | None = None, poll_s: float = 0.2):
        self.root = history.store_root(root)
        self.runners = {**DEFAULT_RUNNERS, **(runners or {})}
        self.poll_s = poll_s
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._current: Job | None = None
        self._worker: threading.Thread | None = None
        self._closed = False
        self._durations: deque[float] = deque(maxlen=RECENT_DURATIONS)   # seconds of recent finished jobs (queue-full estimates)
        for sub in ("locks", "jobs", "uploads"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            scratch.sweep(self.root / sub)   # left by a server or job that was killed: nobody will read them

    # -- requests ------------------------------------------------------------------------------
    def submit(self, config: dict, *, kind: str = "evaluate", data_bytes: bytes | None = None, data_name: str | None = None,
               force: bool = False, visitor: str | None = None, owner: str | None = None, owner_email: str | None = None) -> Job:
        """Queue a job (or join the identical one already queued/running, or answer from a saved run).

        A new job must pass the hosted limits (``hosting.admit``): raises ``hosting.QueueFull`` with a time to try again."""
        from ..access import hosting

        if kind not in self.runners:
            raise QlabError(f"Unknown job kind '{kind}'.")
        pol = hosting.policy()
        if kind == "evaluate":
            hosting.check_variants(config.get("variants"), pol)
        config = {k: v for k, v in dict(config).items() if k != "data" or data_bytes is None}
        key = job_key(kind, config, data_bytes)
        with self._lock:
            for job in self._jobs.values():
                if job.key == key and job.active and not job.cancel_requested:
                    job.subscribers += 1
                    audit.record("ran", owner, job.id, email=owner_email, root=self.root, model=config.get("model"), shared=True)
                    return job
            if kind == "evaluate" and not force:
                cached = history.find_cached(key, self.root)
                if cached:
                    job = Job(id=uuid.uuid4().hex, kind=kind, key=key, config=config, data_name=data_name, state="done",
                              message="answered from a saved run (same comparison, same data, same machine)", run_id=cached,
                              cached=True, finished=time.time())
                    self._remember(job)
                    return job
            running = self._current.started if self._current is not None else None
            hosting.admit(queued=len(self._queue), visitor_active=self._visitor_active(visitor), running_started=running,
                          recent=list(self._durations), pol=pol)
            job = Job(id=uuid.uuid4().hex, kind=kind, key=key, config=config, data_name=data_name, data_bytes=data_bytes,
                      total=len(config.get("variants") or []), visitor=visitor, owner=owner, owner_email=owner_email)
            audit.record("ran", owner, job.id, email=owner_email, root=self.root, model=config.get("model"),
                         variants=",".join(map(str, config.get("variants") or []))[:300])
            self._remember(job)
            self._queue.append(job)
            self._ensure_worker()
            self._wake.notify_all()
            return job

    def _visitor_active(self, visitor: str | None) -> int:
        if not visitor:
            return 0
        return sum(1 for j in self._jobs.values() if j.visitor == visitor and j.active)

    def get(self, job_id: str | None) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id) if job_id else None

    def status(self, job_id: str | None) -> dict | None:
        """A snapshot of the job plus its place in the queue (1 = next, 0 = running or finished)."""
        with self._lock:
            job = self._jobs.get(job_id) if job_id else None
            if job is None:
                return None
            snap = job.snapshot()
            snap["position"] = self.position(job_id)
            snap["ahead"] = max(0, snap["position"] - 1) + (1 if self._current is not None and job.state == "queued" else 0)
            return snap

    def position(self, job_id: str) -> int:
        with self._lock:
            for i, job in enumerate(self._queue):
                if job.id == job_id:
                    return i + 1
            return 0

    def active_jobs(self) -> list[dict]:
        with self._lock:
            jobs = ([self._current] if self._current else []) + list(self._queue)
            return [j.snapshot() for j in jobs if j is not None]

    def machine_holder(self) -> dict | None:
        """Who holds the machine-wide measurement lock right now ({"pid", "job", "model", "since"}), if anyone."""
        return read_holder(self.root)

    def cancel(self, job_id: str, *, by: str | None = None, email: str | None = None, admin: bool = False) -> bool:
        """Cancel a queued job at once, or stop a running one (terminate, then kill if it does not stop).

        With sign-in (``by`` is a person's key) a job that only its owner asked for is cancelled only by that owner
        or an admin; anyone else gets False and the job goes on."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.active:
                return False
            if (by or "").startswith("person:") and job.owner and job.owner != by and not admin and job.subscribers <= 1:
                return False
            audit.record("cancelled", by, job.id, email=email, root=self.root)
            job.cancel_requested = True
            if job.subscribers > 1:  # another tab still wants it: only drop this subscriber
                job.subscribers -= 1
                job.cancel_requested = False
                return True
            if job in self._queue:
                self._queue.remove(job)
                self._finish(job, "cancelled", "cancelled before it started")
                return True
            job.message = "cancelling..."
        return True

    def wait(self, job_id: str, timeout: float = 600.0) -> dict:
        """Block until the job finishes (tests and the CLI; pages poll ``status`` instead)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            snap = self.status(job_id)
            if snap is None or snap["state"] in FINISHED:
                return snap
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} did not finish in {timeout:.0f}s")

    def close(self) -> None:
        """Stop the worker (after cancelling everything): for tests."""
        with self._lock:
            self._closed = True
            for job in list(self._queue):
                self._finish(job, "cancelled", "queue closed")
            self._queue.clear()
            current = self._current
            self._wake.notify_all()
        if current is not None:
            current.cancel_requested = True   # the launcher ends the job's process tree within poll_s
        if self._worker is not None:
            self._worker.join(timeout=15)
        if pool.size():
            pool.close(self.root)

    # -- worker --------------------------------------------------------------------------------
    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        for old in sorted(finished, key=lambda j: j.finished or 0)[:-KEEP_FINISHED]:
            self._jobs.pop(old.id, None)

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name=f"qlab-jobs:{self.root}", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            self._fill_pool()
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait(timeout=5.0)
                if self._closed:
                    return
                job = self._queue.popleft()
                self._current = job
            try:
                if pool.size():
                    pool.wait_ready(self.root)   # no pooled worker still importing while this job measures
                self._run(job)
            except Exception as err:  # noqa: BLE001 - a bug in the queue itself: fail the job, keep the worker alive
                traceback.print_exc()
                from ..access.hosting import redact

                self._finish(job, "failed", f"The job queue failed ({err.__class__.__name__}: {redact(str(err))[:160]}); see the server log.")
            finally:
                with self._lock:
                    self._current = None
                    job.data_bytes = None

    def _fill_pool(self) -> None:
        """QLAB_WORKER_POOL=N: keep N pre-started measuring workers (core.execution.pool); started from this
        long-lived thread, since they die with the thread that started them."""
        if pool.size():
            try:
                from ..engine.evaluate import fill_pool

                fill_pool(self.root)
            except Exception:  # only an optimisation: jobs start fresh workers without it
                LOG.exception("could not fill the worker pool")

    def _finish(self, job: Job, state: str, message: str, error: str | None = None) -> None:
        with self._lock:
            job.state, job.message, job.finished = state, message, time.time()
            if job.started and state in ("done", "failed") and not job.cached:
                self._durations.append(job.finished - job.started)
            job.error = error if error is not None else (message if state == "failed" else None)

    def _machine_lock(self, job: Job):
        """Hold the machine-wide measurement lock; waits (cancellably) while another process holds it."""
        def on_wait(message: str) -> None:
            with self._lock:
                job.state, job.message = "waiting", message
                job.waiting_for = message.removeprefix("waiting for ").removesuffix(" to finish")

        return machine_lock(self.root, {"job": job.id[:8], "model": job.config.get("model")}, should_stop=lambda: job.cancel_requested,
                            on_wait=on_wait, poll_s=self.poll_s)

    def _run(self, job: Job) -> None:
        if job.cancel_requested:
            self._finish(job, "cancelled", "cancelled before it started")
            return
        job_dir = self.root / "jobs" / job.id
        upload_dir = self.root / "uploads" / job.id
        try:
            # a comparison on cluster nodes takes each node's own slot and host lock there, not this machine's
            with self._machine_lock(job) if not job.config.get("hardware") else contextlib.nullcontext():
                with self._lock:
                    job.state, job.started, job.waiting_for = "running", time.time(), None
                    job.message = "starting"
                    cancelled = job.cancel_requested
                if cancelled:
                    raise Cancelled("cancelled")
                config = dict(job.config)
                if job.data_bytes is not None:
                    scratch.claim(upload_dir)
                    data_path = upload_dir / safe_name(job.data_name)
                    data_path.write_bytes(job.data_bytes)
                    config["data"] = str(data_path)
                self._run_child(job, job_dir, config)
        except Cancelled:
            self._finish(job, "cancelled", "cancelled")
        finally:
            shutil.rmtree(upload_dir, ignore_errors=True)
            job.data_bytes = None

    def _run_child(self, job: Job, job_dir: Path, config: dict) -> None:
        scratch.claim(job_dir)
        for stale in ("result.json", "error.json"):
            with contextlib.suppress(OSError):
                (job_dir / stale).unlink()
        (job_dir / "job.json").write_text(json.dumps({"kind": job.kind, "runner": self.runners[job.kind], "config": config}, default=str))
        log_path = job_dir / "stderr.log"
        job.log_path = str(log_path)
        timer = self._wall_timer(job)
        try:
            code = local.run("core.serving.jobs", str(job_dir), env=local.project_env({"QLAB_CACHE_DIR": str(self.root)}), log_path=log_path,
                             on_event=lambda event: self._on_event(job, event), should_stop=lambda: job.cancel_requested or job.timed_out,
                             poll_s=self.poll_s, grace_s=KILL_AFTER_S, on_start=lambda handle: setattr(job, "pid", handle.pid))
        except Cancelled:
            if not job.timed_out:
                raise
            code = None
        finally:
            if timer is not None:
                timer.cancel()
        if job.timed_out:
            from ..access import hosting

            self._finish(job, "failed", hosting.timed_out_message())
            return
        if job.cancel_requested:
            raise Cancelled("cancelled")
        error = wire.error_in(_read_json(job_dir / "error.json"))
        if error:
            if error.kind == wire.CANCELLED:
                raise Cancelled("cancelled")
            from ..access.hosting import redact

            message = redact(error.message or "the evaluation failed")
            if not error.for_user:
                LOG.error("job %s failed (%s); its log is %s", job.id, message, log_path)
                message = f"The evaluation failed unexpectedly ({message}); the details are in the server log (job {job.id[:8]})."
            self._finish(job, "failed", message)
            return
        result = _read_json(job_dir / "result.json")
        if result is None:
            LOG.error("job %s stopped without a result (exit code %s); its log is %s", job.id, code, log_path)
            self._finish(job, "failed", f"The evaluation process stopped without a result (exit code {code}); "
                                        f"the details are in the server log (job {job.id[:8]}).")
            return
        if job.kind == "evaluate":
            report = result.get("report")
            if job.data_name is not None and isinstance(report.get("data"), dict):
                report["data"]["path"] = f"uploaded: {job.data_name}"  # the temp copy is gone; the upload itself is not kept
            elif isinstance(report.get("data"), dict) and report["data"].get("path"):
                from ..access.hosting import is_hosted

                if is_hosted():  # a shared report names the sample, not where the server keeps it
                    report["data"]["path"] = Path(str(report["data"]["path"])).name
            run_id = history.save_run(report, key=job.key, root=self.root, owner=job.owner, owner_email=job.owner_email)
            job.run_id = run_id
            self._finish(job, "done", "finished")
        else:
            job.result = result
            self._finish(job, "done", "finished")
        shutil.rmtree(job_dir, ignore_errors=True)

    def _wall_timer(self, job: Job) -> threading.Timer | None:
        """Stop the job at its wall-time limit (hosting.deadline), if there is one: the launcher then ends its process tree."""
        from ..access import hosting

        end = hosting.deadline(job.started or time.time())
        if end is None:
            return None

        def stop():
            with self._lock:
                job.timed_out = True
                job.message = "stopping: wall-time limit reached"

        timer = threading.Timer(max(0.0, end - time.time()), stop)
        timer.daemon = True
        timer.start()
        return timer

    def _on_event(self, job: Job, event: dict) -> None:
        with self._lock:
            variant = event.get("variant")
            if event.get("total"):
                job.total = int(event["total"])
            overall = event.get("fraction")
            if isinstance(overall, (int, float)):
                if event.get("target"):   # across hardware targets: the job is as far as the mean of its targets
                    done = job.targets.setdefault(str(event["target"]), 0.0)
                    job.targets[str(event["target"])] = max(done, min(1.0, float(overall)))
                    overall = sum(job.targets.values()) / max(1, len(job.targets), len(job.config.get("hardware") or []))
                job.overall = max(job.overall, min(1.0, float(overall)))
            if variant:
                name = f"{event['target']} · {variant}" if event.get("target") else str(variant)
                slot = job.variants.setdefault(name, {"phases": []})
                phase = event.get("phase")
                if phase and phase not in slot["phases"]:
                    slot["phases"].append(phase)
                slot.update({k: event.get(k) for k in ("index", "total", "phase", "message") if event.get(k) is not None})
                share = phase_start(phase)
                if share is not None:  # the variant's own bar moves with its phases (events carry only the overall fraction)
                    slot["fraction"] = max(float(slot.get("fraction") or 0.0), share)
            if event.get("message"):
                job.message = str(event["message"])[:200]


# -- process-wide singletons -----------------------------------------------------------------------
_QUEUES: dict[str, JobQueue] = {}
_QUEUES_LOCK = threading.Lock()


def get_queue(root: str | os.PathLike | None = None) -> JobQueue:
    """The one queue of this process for a store root (default: the store's root)."""
    path = str(history.store_root(root).resolve())
    with _QUEUES_LOCK:
        queue = _QUEUES.get(path)
        if queue is None or queue._closed:
            queue = _QUEUES[path] = JobQueue(path)
        return queue


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# -- runners (run inside the child process) --------------------------------------------------------
def evaluate_runner(config: dict, progress, should_stop) -> dict:
    from ..access import hosting
    from ..engine.evaluate import WORKER, EvalConfig, run_evaluation, validate

    pol = hosting.policy()
    config = dict(config)
    if not pol.allow_local:
        config["allow_local"] = False
        hosting.check_model_name(config.get("model", ""), pol)
        hosting.check_data_path(config.get("data"), history.store_root(), pol)
    if pol.max_model_bytes and config.get("model") not in _bundled_names():
        _check_model_size(config, pol)
    if config.get("data") and config.get("task"):  # the upload's rows and tokens, checked again where the work runs
        from ..inputs import data as data_mod

        dataset = data_mod.load_dataset(config["data"], config["task"])
        hosting.check_dataset_size(dataset.name, dataset.rows, data_mod.count_tokens(dataset, pol.max_tokens) if pol.max_tokens else None, pol)
    known = set(EvalConfig.__dataclass_fields__)
    cfg = validate(EvalConfig(**{k: v for k, v in config.items() if k in known}))
    if not config.get("hardware"):
        return {"report": run_evaluation(cfg, progress=progress, should_stop=should_stop)}
    from ..execution.targets import choose, list_targets, parse_selection, run_across

    chosen = choose(parse_selection(config["hardware"]), list_targets(), allowed=hosting.allowed_hardware())
    return {"report": run_across(cfg, chosen, worker=WORKER, progress=progress, should_stop=should_stop)}


def _bundled_names() -> set[str]:
    from ..bundled import BUNDLED

    return set(BUNDLED)


def _check_model_size(config: dict, pol) -> None:
    from ..access import hosting
    from ..inputs.sources import resolve

    source = resolve(config.get("model", ""), config.get("task"), allow_local=pol.allow_local)
    weights = sum(p.stat().st_size for p in Path(source.path).glob("*.safetensors"))
    hosting.check_model_size(source.name, weights, pol)


def build_runner(config: dict, progress, should_stop) -> dict:
    """Build (or find) variants in the store, so pages can load them without building in a script run."""
    from ..access import hosting
    from ..engine.variants import get_variant
    from ..inputs.sources import resolve
    from ..storage.store import ModelStore

    pol = hosting.policy()
    hosting.check_model_name(config.get("model", ""), pol)
    store = ModelStore()
    variants = list(config.get("variants") or [])
    total = len(variants)

    def say(index, name, phase, fraction, message):
        progress({"variant": name, "index": index, "total": total, "phase": phase, "fraction": fraction, "message": message})

    source = resolve(config["model"], config.get("task"), store=store, allow_local=pol.allow_local,
                     progress=lambda f, m: say(0, variants[0] if variants else "model", "build", f * 0.5, m))
    if pol.max_model_bytes and source.kind != "bundled":
        hosting.check_model_size(source.name, sum(p.stat().st_size for p in Path(source.path).glob("*.safetensors")), pol)
    built = []
    for i, spec in enumerate(variants):
        if should_stop():
            raise Cancelled("cancelled")
        say(i, spec, "build", 0.0, f"building {spec}")
        loaded = get_variant(source, spec, store=store, device=config.get("device", "cpu"), threads=config.get("threads"),
                             max_length=int(config.get("max_length") or 128),
                             progress=lambda f, m, i=i, spec=spec: say(i, spec, "build", f, m))
        built.append({"variant": loaded.label, "key": loaded.entry.key, "cache_hit": loaded.entry.cache_hit})
        say(i, spec, "done", 1.0, f"{spec} ready")
    return {"built": built}


def _load_runner(spec: str):
    target, _, func = spec.rpartition(":")
    if target.endswith(".py"):
        mod_spec = importlib.util.spec_from_file_location(f"qlab_runner_{uuid.uuid4().hex[:6]}", target)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, func)


def child_main(job_dir: str) -> int:
    """Entry point of the child process: run one job, report progress on stdout, write result/error JSON."""
    folder = Path(job_dir)
    spec = json.loads((folder / "job.json").read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = os.getppid()

    def watchdog():  # the server went away: nobody will read the result
        while not stop.is_set():
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(1.0)

    threading.Thread(target=watchdog, daemon=True).start()
    stream = wire.EventStream()   # fd 1 now goes to the log: prints from Python or C cannot corrupt the events

    def should_stop() -> bool:
        return stop.is_set()

    try:
        runner = _load_runner(spec["runner"])
        result = runner(spec["config"], stream.send, should_stop)
        atomic_write_text(folder / "result.json", report_to_json(result))   # a build's result too: checked when saved as a run
        return 0
    except BaseException as err:  # noqa: BLE001 - every failure becomes a one-line message for the page
        error = wire.error_from_exception(err, cancelled=stop.is_set())
        if error.kind == wire.BUG:
            traceback.print_exc()
        wire.write_json(folder / "error.json", wire.error_payload(error))
        return 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m core.serving.jobs <job dir>", file=sys.stderr)
        sys.exit(2)
    sys.exit(child_main(sys.argv[1]))
