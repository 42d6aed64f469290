"""The evaluation engine: check the request, then measure each variant in a fresh worker process and assemble the report.

    config = EvalConfig(task="embedding", model="minilm", variants=["fp32", "onnx-int8"])
    report = run_evaluation(config, progress=print)

Flow: ``validate`` checks everything cheap first (task, model, variants, numbers, data file) and raises a
:class:`QlabError` subclass with a one-line message. ``run_evaluation`` then resolves the model (training a bundled
one on first use), writes the dataset as JSON into a private temp folder, and for every variant starts
``python -m core.engine.runner`` (a build worker first when the artifact is not stored yet, then a measuring worker).
fp32 runs first: its outputs are saved as .npy and every other variant's quality is computed against them on the
very same inputs. If fp32 is not among the requested variants it still runs, for quality only.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..bundled import BUNDLED, bundled_path, wrong_task
from ..env import cuda_available
from ..errors import QlabError, RecipeError, SourceError
from ..execution import local, pool, scratch, wire
from ..execution.events import PHASES, Cancelled
from ..inputs import calibration as calibration_mod
from ..inputs import data as data_mod
from ..inputs.sources import max_positions, resolve
from ..measure.bench import Protocol
from ..measure.generation import DEFAULT_NEW_TOKENS, DEFAULT_PROMPT_LENGTHS, NO_KV_CACHE
from ..paths import PROJECT_ROOT
from ..recipes.family import causes_from_notes
from ..recipes.registry import slow_causes, whatif_notes
from ..recipes.registry import worker_env as recipe_worker_env
from ..reporting.recommend import budgets_for, default_batch_size, mark_cells, recommend, wrong_words
from ..reporting.results import REFERENCE, Report, VariantResult, finite, speed_unit
from ..scenarios import get_scenario
from ..storage.store import ModelStore
from ..tasks import TASKS, budget_keys, get_task, infer_task
from .runner import thread_env
from .variants import is_stored

MAX_BATCH = 1024
MAX_SEQ = 8192
DEFAULT_THROUGHPUT_BATCH = 32
# progress: each artifact to build counts one unit, each variant to measure one unit, split by phase (events.PHASES)


class WorkerError(wire.RemoteError):
    """A worker process died without a result (a crash, not bad input)."""


@dataclass
class EvalConfig:
    task: str
    model: str
    variants: list[str]
    data: str | None = None                 # path; None = the task's bundled sample
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    seq_lengths: list[int] = field(default_factory=lambda: [16, 64])
    threads: int | None = None
    device: str = "cpu"
    max_length: int = 128
    budgets: dict | None = None             # {"min_cosine": 0.99, "max_accuracy_drop": 1.0, "max_ppl_increase": 2.0}
    recommend_batch_size: int | None = None
    allow_local: bool = True
    stride: int | None = None               # causal-lm perplexity window stride; default half the context
    protocol: dict | None = None            # latency protocol overrides (core.measure.bench.Protocol fields)
    throughput_batch_size: int = DEFAULT_THROUGHPUT_BATCH   # whole-dataset throughput (sorted vs unsorted); capped at the number of texts
    data_bytes: bytes | None = field(default=None, repr=False)   # an upload, instead of ``data`` (then ``data`` is its name)
    scenario: str = "latency"               # latency: one forward pass per cell; generate: greedy decoding (causal LMs)
    prompt_lengths: list[int] = field(default_factory=lambda: list(DEFAULT_PROMPT_LENGTHS))   # generate: prompt tokens
    new_tokens: int = DEFAULT_NEW_TOKENS    # generate: tokens generated after each prompt
    calibration: str = calibration_mod.DEFAULT_SOURCE   # what static int8 calibrates on: sample (bundled, held out) | data (this run's texts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("data_bytes", None)
        return d


@dataclass
class Plan:
    config: EvalConfig
    source: object | None            # core.inputs.sources.Source, None until a bundled model is built
    dataset: data_mod.Dataset
    max_positions: int | None = None


# -- validation ---------------------------------------------------------------------------------------
def check_budgets(given: dict | None) -> dict:
    """The budgets a config gives, as numbers in range; at most one measure per task (QlabError otherwise)."""
    known = budget_keys()
    budgets: dict = {}
    for key, value in (given or {}).items():
        if key not in known:
            raise QlabError(f"Unknown budget '{key}'; budgets are: {', '.join(known)}.")
        if value is None:
            continue
        try:
            budgets[key] = float(value)
        except (TypeError, ValueError):
            raise QlabError(f"Budget {key} must be a number, got '{value}'.") from None
        spec = known[key][1]
        if not math.isfinite(budgets[key]) or not spec.valid_min <= budgets[key] <= spec.valid_max:
            raise QlabError(f"Budget {key}={value} is out of range ({spec.valid_min:g} to {spec.valid_max:g}).")
    for task in {t.name: t for t, _ in known.values()}.values():
        # a picked measure beside the default one at its default is a validated config's shape (core.reporting.recommend.budgets_for)
        mine = [b for b in task.all_budgets if b.key in budgets and (b is not task.budget or abs(budgets[b.key] - b.default) > 1e-12)]
        if len(mine) > 1 or (len(mine) == 1 and mine[0] is task.budget and any(b.key in budgets for b in task.budgets)):
            raise QlabError(f"{task.name} takes one quality budget, on one measure; got {' and '.join(b.flag for b in mine)}: keep one.")
    return budgets


def _ints(values, what: str, lo: int, hi: int) -> list[int]:
    if isinstance(values, (int, str)):
        values = [values]
    out = []
    for v in values or []:
        try:
            n = int(str(v).strip())
        except ValueError:
            raise QlabError(f"{what} must be whole numbers, got '{v}'.") from None
        if not lo <= n <= hi:
            raise QlabError(f"{what} must be between {lo} and {hi}, got {n}.")
        if n not in out:
            out.append(n)
    if not out:
        raise QlabError(f"Give at least one value for {what}.")
    return out


def _config_json(path: Path) -> dict:
    try:
        return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_task_fit(path: Path, task: str, name: str) -> None:
    """A model whose config says it does another task cannot be evaluated for ``task`` (an embedding can be taken from a classifier's encoder)."""
    cfg = _config_json(path)
    is_st = (Path(path) / "modules.json").is_file() or (Path(path) / "sentence_bert_config.json").is_file()
    inferred = infer_task(cfg.get("architectures"), is_sentence_transformer=is_st)
    if inferred is None or get_task(task).accepts_model_of(inferred):
        return
    arch = ", ".join(cfg.get("architectures") or []) or "?"
    raise SourceError(f"Model '{name}' is a {inferred} model ({arch}); it cannot do {task}. Pick a {task} model or --task {inferred}.")


def _resolve_model(config: EvalConfig, build: bool, progress=None):
    """The Source, or None for a bundled model that is not built yet (when ``build`` is False)."""

    name = (config.model or "").strip()
    if name in BUNDLED:
        error = wrong_task(name, config.task)
        if error:
            raise error
        if not build and bundled_path(name, build=False) is None:
            return None
        return resolve(name, config.task, progress=progress, allow_local=config.allow_local)
    source = resolve(name, config.task, allow_local=config.allow_local)
    check_task_fit(source.path, config.task, name)
    return source


def _load_data(config: EvalConfig) -> data_mod.Dataset:
    if config.data_bytes is not None:
        return data_mod.load_dataset(config.data_bytes, config.task, name=config.data or "upload")
    if config.data:
        return data_mod.load_dataset(config.data, config.task)
    return data_mod.load_dataset(data_mod.sample_path(config.task), config.task)


def _check_labels(source, dataset: data_mod.Dataset) -> list[int] | None:
    if not get_task(dataset.task).has_labels or source is None:
        return None
    return data_mod.map_labels(dataset.labels or [], source.labels, dataset.name)


def _check_positions(config: EvalConfig, source, what: str = "Sequence length", fix: str = "use --seq-lengths") -> int | None:
    if source is None:
        return None
    limit = max_positions(source.path)
    if limit:
        too_long = [s for s in config.seq_lengths if s > limit]
        if too_long:
            raise QlabError(f"{what} {too_long[0]} is longer than model '{config.model}' accepts ({limit} positions); {fix} up to {limit}.")
    return limit


def _plan(config: EvalConfig, build: bool = False, progress=None) -> Plan:
    from .. import recipes
    from ..tasks import check_task

    if config is None or not isinstance(config, EvalConfig):
        raise QlabError("Evaluation needs an EvalConfig.")
    check_task(config.task)
    if config.device not in ("cpu", "cuda"):
        raise QlabError(f"Unknown device '{config.device}'; choose cpu or cuda.")
    if config.device == "cuda":
        if not cuda_available():
            raise QlabError("Device cuda was asked for but this machine has no CUDA GPU; use --device cpu.")
    batch_sizes = _ints(config.batch_sizes, "batch sizes", 1, MAX_BATCH)
    seq_lengths = _ints(config.seq_lengths, "sequence lengths", 2, MAX_SEQ)
    threads = None if config.threads in (None, 0, "") else _ints([config.threads], "threads", 1, 1024)[0]
    max_length = _ints([config.max_length], "max length", 2, MAX_SEQ)[0]
    stride = None if config.stride in (None, 0) else _ints([config.stride], "stride", 1, MAX_SEQ)[0]
    rec_bs = config.recommend_batch_size
    if rec_bs is not None:
        rec_bs = _ints([rec_bs], "recommend batch size", 1, MAX_BATCH)[0]
        if rec_bs not in batch_sizes:
            raise QlabError(f"Recommend batch size {rec_bs} is not in the batch sizes measured ({', '.join(map(str, batch_sizes))}); add it to --batch-sizes.")
    else:
        rec_bs = default_batch_size(batch_sizes)
    budgets = check_budgets(config.budgets)
    tput_bs = _ints([DEFAULT_THROUGHPUT_BATCH if config.throughput_batch_size in (None, "") else config.throughput_batch_size],
                    "throughput batch size", 1, MAX_BATCH)[0]
    if config.protocol:
        try:
            Protocol(**config.protocol)
        except TypeError as err:
            raise QlabError(f"Unknown latency protocol setting: {err}.") from None
    variant_spec = config.variants if config.variants else []
    labels = recipes.expand(",".join(variant_spec) if isinstance(variant_spec, (list, tuple)) else str(variant_spec), config.task, config.device)
    if not labels:
        raise RecipeError(f"No variant can run here for {config.task}.")
    if not (config.model or "").strip():
        raise SourceError("No model given: name a bundled model (minilm, minilm-classifier, demo-gpt), a hub id or a local folder.")
    dataset = _load_data(config)
    task = get_task(config.task)
    if task.generates and not (dataset.raw_text or "").strip():
        raise data_mod.DataError(f"'{dataset.name}' has no text to compute perplexity over.")
    source = _resolve_model(config, build=build, progress=progress)
    _check_labels(source, dataset)
    scenario = get_scenario(config.scenario)
    reason = scenario.unavailable_reason(task)
    if reason:
        raise QlabError(reason[0].upper() + reason[1:] + ".")
    calibration_mod.check_source(config.calibration)

    def check_positions(lengths, what="Sequence length", fix="use --seq-lengths"):
        return _check_positions(replace(config, seq_lengths=lengths), source, what=what, fix=fix)

    fields, positions = scenario.plan(replace(config, seq_lengths=seq_lengths), dataset, ints=_ints, max_seq=MAX_SEQ,
                                      check_positions=check_positions)
    checked = dict(model=config.model.strip(), variants=labels, batch_sizes=batch_sizes, seq_lengths=seq_lengths, threads=threads,
                   scenario=scenario.name, max_length=max_length, stride=stride, recommend_batch_size=rec_bs, budgets=budgets_for(budgets),
                   throughput_batch_size=min(tput_bs, max(1, len(dataset.texts))))
    clean = replace(config, **{**checked, **fields})   # the scenario's own fields last
    return Plan(clean, source, dataset, positions)


def validate(config: EvalConfig) -> EvalConfig:
    """The checked, normalised config (variants expanded to canonical labels, defaults filled in).

    Raises a :class:`QlabError` subclass with a one-line message for bad input. Fast: nothing is built or run
    (a bundled model that still has to be trained is checked after training, by run_evaluation).
    """
    return _plan(config, build=False).config


# -- workers ------------------------------------------------------------------------------------------
def _worker_env(threads: int | None) -> dict:
    env = dict(os.environ)
    env.update(thread_env(threads))
    env["PYTHONPATH"] = str(PROJECT_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    # Threads that sleep instead of spinning while they wait: on a shared (busy) machine, spinning OpenMP threads
    # fight the other processes and one fp32 forward pass can take 50x longer; on an idle machine the cost is small.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONWARNINGS"] = "ignore"
    return env


POOL_ENTRY = "core.engine.runner:main"   # what a pooled worker (core.execution.pool) runs on the job file it is handed


def fill_pool(root=None, n: int | None = None) -> int:
    """QLAB_WORKER_POOL=N: start measuring workers ahead of time, with a fresh worker's default thread settings."""
    return pool.fill(_worker_env(None), POOL_ENTRY, root, n)


def run_worker(job: dict, job_dir: Path, on_event: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
               poll_s: float = 0.2) -> dict:
    """Run ``python -m core.engine.runner`` on ``job`` through the local launcher and return its result dict.

    On request (``should_stop``) the worker's whole process tree is ended and :class:`Cancelled` is raised.
    """
    tag = f"{job['mode']}-{uuid.uuid4().hex[:8]}"
    job = dict(job, result=str(job_dir / f"{tag}.result.json"))
    job_path = job_dir / f"{tag}.job.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    log_path = job_dir / f"{tag}.log"

    def forward(event: dict) -> None:
        if on_event and event.get("phase") != "done":
            on_event(event)

    env = _worker_env(job.get("threads"))
    if job.get("mode") != "build":   # a variant measured as its runtime is deployed (Family.worker_env)
        env = recipe_worker_env(job["variant"], env)
    handle = pool.take(env, str(job_path), str(log_path))   # QLAB_WORKER_POOL=N: a pre-started fresh process, used once; else None
    code = local.run("core.engine.runner", str(job_path), env=env, log_path=log_path, on_event=forward,
                     should_stop=should_stop, poll_s=poll_s, grace_s=1.0, handle=handle)
    result_path = Path(job["result"])
    if result_path.is_file():
        result = json.loads(result_path.read_text(encoding="utf-8"))
        error = wire.error_in(result)
        if error:
            wire.raise_error(error, bug=WorkerError)
        return result
    tail = [ln.strip() for ln in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()][-1:]
    raise WorkerError(f"worker for {job['variant']} exited with code {code} without a result" + (f": {tail[0][:300]}" if tail else ""))


# -- notes ------------------------------------------------------------------------------------------
def slow_notes(result: VariantResult, ref: VariantResult, batch_sizes: list[int], environment: dict, tolerance: float = 1.05) -> list[str]:
    """'slower than fp32 at batch N (X ms vs Y ms); likely cause: ...' for every batch size where the variant lost
    (by more than ``tolerance`` and beyond fp32's own p90, so noise on a busy machine is not explained as a cause)."""
    if result.variant == REFERENCE or result.error or ref is None or ref.error:
        return []
    out = []
    ms = speed_unit([result, ref])
    for b in batch_sizes:
        mine, theirs = result.speed_at(b), ref.speed_at(b)
        if not mine or not theirs or mine <= theirs * tolerance:
            continue
        ref_p90 = ref.speed_p90_at(b)
        if ref_p90 and mine <= ref_p90:   # within fp32's own run-to-run spread: not a real slowdown
            continue
        causes = []   # the variant's family explains it (core/recipes/<family>/), then the scenario (no KV cache)
        for cause in [*slow_causes(result, environment), *causes_from_notes((NO_KV_CACHE,), result.notes)]:
            if cause.words not in causes:
                causes.append(cause.words)
        threads, cores = environment.get("threads"), environment.get("cores")
        if threads and cores and threads > cores:
            causes.append(f"{threads} threads on {cores} logical cores oversubscribe the CPU")
        if not causes:
            if "int8" in result.variant and b <= 2:
                causes.append(f"at batch {b} the cost of quantizing activations on the fly outweighs the faster int8 matmuls")
            elif "int8" in result.variant:
                causes.append("int8 quantize/dequantize overhead outweighs the faster matmuls at these sizes")
            else:
                causes.append("per-call overhead of this runtime at these sizes")
        what = "Decodes slower than fp32" if ms == "ms/token" else "Slower than fp32"
        out.append(f"{what} at batch {b} ({mine:.2f} {ms} vs {theirs:.2f} {ms} p50); likely cause: {'; '.join(causes)}.")
    return out


# -- the run ------------------------------------------------------------------------------------------
def _emit(progress, **event) -> None:
    if progress:
        progress(event)


WORKER = "core.engine.evaluate:evaluation_worker"   # the engine's worker for core.execution's launchers, by a name any node can import


def evaluation_worker(config: EvalConfig | dict, data_bytes: bytes | None = None, *, progress: Callable[[dict], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> dict:
    """One comparison, run by a launcher (core.execution.launcher) here or on a cluster node; returns its report dict.

    ``config`` is an EvalConfig, or its fields as a dict sent to another node (fields this checkout does not know are
    left out); ``data_bytes``, an upload, travels apart from it.
    """
    if not isinstance(config, EvalConfig):
        known = set(EvalConfig.__dataclass_fields__)
        config = EvalConfig(**{k: v for k, v in config.items() if k in known and k != "data_bytes"}, data_bytes=data_bytes)
    elif data_bytes is not None and config.data_bytes is None:
        config = replace(config, data_bytes=data_bytes)
    return run_evaluation(config, progress=progress, should_stop=should_stop)


def run_evaluation(config: EvalConfig, progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Measure every requested variant; returns the report dict (see core.report.Report).

    progress events: {"variant", "index", "total", "phase": build|load|quality|latency|done, "fraction": 0..1 overall, "message"}.
    should_stop() returning True kills the running worker and raises Cancelled.
    """

    started = time.perf_counter()
    load_start = _load_average()
    plan = _plan(config, build=False)
    cfg = plan.config
    measured_ref = REFERENCE in cfg.variants
    slots = [REFERENCE] + [v for v in cfg.variants if v != REFERENCE]   # fp32 first: everyone's quality is measured against it
    total = len(slots)

    if plan.source is None:  # a bundled model that is trained on first use
        def model_progress(fraction, message):
            if should_stop and should_stop():
                raise Cancelled("Evaluation cancelled.")
            _emit(progress, variant=cfg.model, index=0, total=total, phase="build", fraction=0.0, message=f"preparing {cfg.model}: {message}")

        _emit(progress, variant=cfg.model, index=0, total=total, phase="build", fraction=0.0, message=f"preparing bundled model {cfg.model} (first use)")
        plan = _plan(config, build=True, progress=model_progress)
        cfg = plan.config
    source, dataset = plan.source, plan.dataset
    gold = _check_labels(source, dataset)
    limit = plan.max_positions
    context = min(cfg.max_length, limit) if limit else cfg.max_length
    stride = min(cfg.stride or max(1, context // 2), context)
    store = ModelStore()

    scratch.sweep(tempfile.gettempdir(), prefix="qlab-run-")   # run folders of evaluations that were killed
    run_dir = scratch.claim(tempfile.mkdtemp(prefix="qlab-run-"))
    ref_dir = run_dir / "reference"
    ref_dir.mkdir()
    dataset_path = run_dir / "dataset.json"
    dataset_path.write_text(json.dumps({**dataset.to_dict(), "gold": gold}), encoding="utf-8")
    base_job = {
        "source": {"name": source.name, "kind": source.kind, "path": str(source.path), "task": source.task, "fingerprint": source.fingerprint,
                   "labels": list(source.labels)},
        "dataset": str(dataset_path), "data_name": dataset.name, "ref_dir": str(ref_dir), "device": cfg.device, "threads": cfg.threads,
        "max_length": context, "context": context, "stride": stride, "batch_sizes": cfg.batch_sizes, "seq_lengths": cfg.seq_lengths,
        "recommend_batch_size": cfg.recommend_batch_size, "protocol": cfg.protocol or {},
        "throughput_batch_size": cfg.throughput_batch_size, "scenario": cfg.scenario, "prompt_lengths": cfg.prompt_lengths, "new_tokens": cfg.new_tokens,
        "calibration_texts": calibration_mod.run_texts(cfg.calibration, dataset.texts),
        "run_variants": list(cfg.variants),   # whose families' libraries every worker's environment names
    }
    missing = [label for label in slots if not is_stored(source, label, store, base_job["calibration_texts"])]
    units = len(missing) + len(slots)
    state = {"done": 0.0}

    def report(label: str, phase: str, done: float, message: str) -> None:
        state["done"] = max(state["done"], min(done, units))   # never moves backwards
        _emit(progress, variant=label, index=slots.index(label), total=total, phase=phase, fraction=state["done"] / units, message=message)

    results: list[VariantResult] = []
    reference: dict = {}
    environment: dict = {}
    builds: dict = {}
    try:
        if missing:  # one worker builds every missing artifact (sharing one fp32 model); measuring workers only load
            def on_build(event):
                label = event.get("variant") if event.get("variant") in missing else missing[0]
                report(label, "build", missing.index(label) + float(event.get("fraction") or 0.0), event.get("message", ""))

            report(missing[0], "build", 0.0, f"building {', '.join(missing)}")
            builds = run_worker(dict(base_job, mode="build", variants=missing, variant=missing[0]), run_dir, on_build, should_stop)["builds"]
            ref_error = wire.error_in(builds.get(REFERENCE))
            if ref_error:
                wire.raise_error(ref_error, bug=lambda message: WorkerError(f"the fp32 reference could not be built: {message}"))

        for index, label in enumerate(slots):
            is_ref = index == 0
            quality_only = is_ref and not measured_ref
            base = len(missing) + index

            def on_event(event, label=label, base=base):
                lo, hi = PHASES.get(event.get("phase"), (0.0, 1.0))
                report(label, event.get("phase"), base + lo + (hi - lo) * min(1.0, max(0.0, float(event.get("fraction") or 0.0))), event.get("message", ""))

            build_info = builds.get(label)
            try:
                build_error = wire.error_in(build_info)
                if build_error:
                    wire.raise_error(build_error, bug=WorkerError)
                report(label, "load", base, f"loading {label}")
                raw = run_worker(dict(base_job, mode="measure", variant=label, reference=is_ref, quality_only=quality_only), run_dir, on_event, should_stop)
            except Cancelled:
                raise
            except (QlabError, WorkerError) as err:
                if is_ref:
                    if isinstance(err, QlabError):
                        raise
                    raise WorkerError(f"the fp32 reference could not be computed: {err}") from None
                results.append(VariantResult(variant=label, error=str(err), notes=[]))
                report(label, "done", base + 1, f"{label} failed: {err}")
                continue
            environment = environment or raw.get("environment", {})
            raw.pop("environment", None)
            raw.pop("worker_s", None)
            if build_info is not None:
                raw["cache_hit"] = bool(build_info.get("cache_hit"))
                raw["build_s"] = build_info.get("build_s", raw.get("build_s"))
            result = VariantResult.from_dict(raw)
            result.is_reference = label == REFERENCE
            if is_ref:
                reference = {"variant": REFERENCE, "quality": dict(result.quality), "size_bytes": result.size_bytes, "measured": measured_ref}
            if not quality_only:
                results.append(result)
            report(label, "done", base + 1, f"{label} done")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    # quality relative to fp32, computed notes, recommendation
    ref_q = reference.get("quality", {})
    ref_result = next((r for r in results if r.variant == REFERENCE), None)
    mark_cells(results, cfg.task, cfg.budgets)   # each timed cell's outputs against fp32's, judged by the budget
    for r in results:
        if r.error:
            continue
        r.quality.update(get_task(cfg.task).derived_quality(r.quality, ref_q))
        r.notes = r.notes + slow_notes(r, ref_result, cfg.batch_sizes, environment) + whatif_notes(r, results, cfg.batch_sizes, speed_unit(results))
        wrong = wrong_words(r, cfg.task, cfg.budgets)
        if wrong:
            r.notes = r.notes + [f"{wrong[0].upper()}{wrong[1:]}: the cells timed there measured outputs that break the quality budget, "
                                 "so it is not recommended at those batch sizes."]
    rec = recommend(results, cfg.task, cfg.budgets, cfg.recommend_batch_size, reference_quality=ref_q)
    by_batch = {str(b): recommend(results, cfg.task, cfg.budgets, b, reference_quality=ref_q) for b in cfg.batch_sizes}
    settings = {
        "variants": cfg.variants, "batch_sizes": cfg.batch_sizes, "seq_lengths": cfg.seq_lengths, "threads": cfg.threads, "device": cfg.device,
        "max_length": context, "recommend_batch_size": cfg.recommend_batch_size, "protocol": _protocol_dict(cfg.protocol),
        "throughput_batch_size": cfg.throughput_batch_size,
        "speed_summary": get_scenario(cfg.scenario).summary,
        "scenario": cfg.scenario,
        "calibration": cfg.calibration,
        "elapsed_s": round(time.perf_counter() - started, 2),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        "load_average": {"start": load_start, "end": _load_average()},
    }
    if get_task(cfg.task).generates:   # perplexity's windows
        settings.update(context=context, stride=stride)
    settings.update(get_scenario(cfg.scenario).report_settings(cfg))
    if rec is None:
        settings["no_recommendation_reason"] = ("no measured variant stays within the quality budget"
                                                + ("" if measured_ref else " (add fp32 to the variants to always have an answer)"))
    report = Report(
        task=cfg.task, model=cfg.model, environment=environment, results=results, recommended=rec, budgets=cfg.budgets,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), run_id=uuid.uuid4().hex,
        data={"name": dataset.name, "rows": dataset.rows, "texts": len(dataset.texts), "columns": dataset.columns,
              "path": str(cfg.data) if cfg.data else str(data_mod.sample_path(cfg.task)) if cfg.data_bytes is None else cfg.data or "upload"},
        settings=settings, reference=reference, recommended_by_batch={b: r for b, r in by_batch.items() if r is not None},
    )
    return finite(report.to_dict())


def _load_average() -> float | None:
    """1-minute load average: a report read later shows whether the machine was busy while it was measured."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _protocol_dict(overrides: dict | None) -> dict:
    return Protocol(**(overrides or {})).to_dict()


__all__ = ["EvalConfig", "Cancelled", "WorkerError", "validate", "run_evaluation", "TASKS"]
