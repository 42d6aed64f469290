"""One variant, measured in a fresh worker process: ``python -m core.engine.runner JOB.json``.

The parent (core.engine.evaluate, through core.execution.local) writes a job file (JSON only; nothing user-supplied is
ever pickled) and starts this module with OMP/MKL thread counts already in its environment, so torch and ONNX
Runtime start with the right number of threads. The worker speaks the lab's event protocol
(core.execution.wire) on its real stdout; anything libraries print is sent to stderr instead:

    @@qlab {"phase": "build|load|quality|latency", "fraction": 0..1 within the phase, "message": "..."}
    @@qlab {"phase": "done", "fraction": 1.0, "message": "done"}

and writes its result (or ``{"error": {"kind": "user|bug|...", "message": ...}}``, the wire format's error,
core.execution.wire) to the job's ``result`` path.

Modes: ``build`` builds the artifact into the store and exits (so the measuring worker's peak RSS is not inflated
by the build); ``measure`` loads the variant, computes quality on the dataset (saving fp32's outputs as .npy into
the run's reference folder when it is the reference, reading them with ``allow_pickle=False`` otherwise) and runs
the latency protocol.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from ..env import THREAD_VARS
from ..scenarios import get_scenario

QUALITY_BATCH = 16


def thread_env(threads: int | None) -> dict:
    return {k: str(threads) for k in THREAD_VARS} if threads else {}


class Channel:
    """Events to the parent on the original stdout (core.execution.wire.EventStream: fd 1 is pointed at stderr, so
    stray prints, from Python or from C, cannot corrupt them)."""

    def __init__(self):
        from ..execution.wire import EventStream

        self._stream = EventStream()

    def send(self, **event) -> None:
        self._stream.send(event)

    def progress(self, phase: str, fraction: float, message: str) -> None:
        self.send(phase=phase, fraction=round(float(fraction), 4), message=message)


def peak_rss_bytes() -> int:
    peak = 0
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):
        pass
    try:
        import psutil

        peak = max(peak, psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - memory is reported when it can be read
        pass
    return int(peak)


def _current_rss() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - memory is reported when it can be read
        return None


def _preimport(source, label: str) -> None:
    """Import what a torch variant's first from_pretrained would import lazily (transformers' modeling code, the
    architecture's module, optional integrations), so ``load_s`` times loading the weights, not importing libraries."""
    from ..recipes.registry import family_of

    family = family_of(label)
    if family is not None and not family.loads_transformers:
        return
    try:
        import transformers.activations
        import transformers.modeling_utils  # noqa: F401
        from transformers import AutoConfig

        from ..inputs.sources import model_class

        config = AutoConfig.from_pretrained(str(source.path), trust_remote_code=False)
        model_class(source.task)._model_mapping[type(config)]
    except Exception:  # noqa: BLE001 - only an optimisation of what load_s measures
        pass


def _source(job: dict):
    from ..inputs.sources import Source

    s = dict(job["source"])
    s["path"] = Path(s["path"])
    return Source(**s)


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def _encode(tokenizer, texts, max_length):
    import numpy as np

    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


def compute_quality(job: dict, variant, tokenizer, channel: Channel) -> dict:
    """Quality of ``variant`` on the dataset, against fp32's saved outputs (or saving them, for the reference)."""
    import numpy as np

    from ..measure import metrics
    from ..tasks import get_task

    data = json.loads(Path(job["dataset"]).read_text(encoding="utf-8"))
    ref_dir = Path(job["ref_dir"])
    is_ref = job["reference"]
    task, max_length = get_task(job["source"]["task"]), job["max_length"]
    texts = data["texts"]

    if not task.generates:   # one output per text: a sentence vector or a label's logits
        outputs = []
        n = len(texts)
        for k, sl in enumerate(_batches(n, QUALITY_BATCH)):
            ids, mask = _encode(tokenizer, texts[sl], max_length)
            out = variant(ids, mask)
            variant.sync()
            outputs.append(metrics.mean_pool(out, mask) if task.pooled else np.asarray(out, dtype=np.float32))
            channel.progress("quality", (sl.stop) / n, f"quality {sl.stop}/{n} texts")
        result = np.concatenate(outputs, axis=0)
        if task.pooled:
            if is_ref:
                np.save(ref_dir / "embeddings.npy", result, allow_pickle=False)
            ref = np.load(ref_dir / "embeddings.npy", allow_pickle=False)
            scores = [p[2] for p in data["pairs"]] if data.get("pairs") else None
            return metrics.embedding_quality(result, ref, scores)
        pred = result.argmax(axis=1).astype(np.int64)
        if is_ref:
            np.save(ref_dir / "predictions.npy", pred, allow_pickle=False)
        ref_pred = np.load(ref_dir / "predictions.npy", allow_pickle=False)
        return metrics.classification_quality(pred, np.asarray(data["gold"], dtype=np.int64), ref_pred)

    # a causal LM: perplexity over the raw text
    ids = tokenizer(data["raw_text"], add_special_tokens=False)["input_ids"]
    if len(ids) < 2:
        from ..errors import DataError

        raise DataError(f"'{job['data_name']}' is {len(ids)} token long; perplexity needs at least 2 tokens of text.")
    channel.progress("quality", 0.05, f"perplexity over {len(ids)} tokens (context {job['context']}, stride {job['stride']})")

    def run(batch, mask):
        out = variant(batch, mask)
        variant.sync()
        return out

    from ..measure import kl_stats

    collect = kl_stats.ReferenceWriter(ref_dir) if is_ref else kl_stats.Comparer(ref_dir)   # the llama.cpp KL statistics
    scores = metrics.causal_lm_scores(run, ids, job["context"], job["stride"], keep_predictions=True, on_logp=collect)
    pred = scores.pop("predictions")
    if is_ref:
        collect.save()
    else:
        scores.update(collect.stats())
    if is_ref:
        np.save(ref_dir / "next_tokens.npy", pred, allow_pickle=False)
    scores["top1_agreement"] = metrics.top1_agreement(pred, np.load(ref_dir / "next_tokens.npy", allow_pickle=False))
    return scores


def calibration_notes(job: dict, label: str, tokenizer) -> list[str]:
    """For a calibrated variant: the token lengths it was calibrated on, and the timed lengths beyond them (static
    int8's activation ranges were never seen there: the per-cell output check says whether that mattered)."""
    from ..inputs.calibration import job_texts
    from ..recipes import resolve

    if not resolve(label)[0].calibrated:
        return []
    texts = job_texts(job.get("calibration_texts"), job["source"]["task"])
    if not texts:
        return []
    lengths = sorted(len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=job["max_length"])["input_ids"])
    note = f"Calibrated on {len(lengths)} texts of {lengths[0]}-{lengths[-1]} tokens (median {lengths[len(lengths) // 2]})"
    beyond = sorted(s for s in job.get("seq_lengths") or [] if s > lengths[-1])
    if beyond:
        note += (f"; timed at {', '.join(map(str, beyond))} tokens, beyond every calibration text: the per-cell output check below "
                 "says whether that mattered")
    return [note + "."]


def run_job(job: dict, channel: Channel) -> dict:
    threads = job.get("threads")
    for key, value in thread_env(threads).items():
        os.environ.setdefault(key, value)
    import torch

    if threads:
        torch.set_num_threads(int(threads))
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass

    from ..env import environment
    from ..inputs.sources import load_tokenizer, quiet_transformers
    from ..recipes.registry import library_versions
    from ..storage.store import ModelStore
    from .variants import get_variant

    quiet_transformers()
    from ..recipes import BuildContext

    source = _source(job)
    store = ModelStore()
    label = job.get("variant")
    phase = {"name": "build"}

    def on_progress(fraction: float, message: str) -> None:
        if message.startswith("loading"):
            phase["name"] = "load"
        channel.progress(phase["name"], fraction if phase["name"] == "build" else 0.5, message)

    if job["mode"] == "build":  # every missing artifact, sharing one fp32 model
        from ..execution import wire

        context = BuildContext(source=source)
        builds = {}
        for label in job["variants"]:
            def on_build(fraction, message, label=label):
                channel.send(phase="build", variant=label, fraction=round(float(fraction), 4), message=message)

            on_build(0.0, f"building {label}")
            try:
                loaded = get_variant(source, label, store=store, device=job["device"], threads=threads, progress=on_build,
                                     max_length=job["max_length"], context=context, calibration_texts=job.get("calibration_texts"))
                builds[label] = {"cache_hit": loaded.entry.cache_hit, "build_s": loaded.entry.meta.get("build_s"), "size_bytes": loaded.entry.size_bytes}
                del loaded
            except Exception as err:  # noqa: BLE001 - one recipe failing on this model must not stop the others
                error = wire.error_from_exception(err)
                if error.kind == wire.BUG:
                    traceback.print_exc()
                    error = wire.WireError(wire.BUG, f"build failed: {error.message}")
                builds[label] = wire.error_payload(error)
            on_build(1.0, f"{label} built" if "error" not in builds[label] else f"{label} failed")
        return {"builds": builds}

    channel.progress("load", 0.0, f"loading {label}")
    phase["name"] = "build"
    _preimport(source, label)
    baseline_rss = _current_rss()   # libraries imported, variant not loaded yet
    tokenizer = load_tokenizer(source)
    loaded = get_variant(source, label, store=store, device=job["device"], threads=threads, progress=on_progress, max_length=job["max_length"],
                         context=BuildContext(source=source, _tokenizer=tokenizer),   # loads no fp32 model when the artifact is stored
                         calibration_texts=job.get("calibration_texts"))
    variant, entry = loaded.variant, loaded.entry
    result = {
        "variant": label, "size_bytes": entry.size_bytes, "param_bytes": int(variant.param_bytes), "build_s": entry.meta.get("build_s"),
        "cache_hit": entry.cache_hit, "load_s": round(loaded.load_s, 4), "notes": list(variant.notes), "baseline_rss_bytes": baseline_rss,
        # the libraries of every variant of the run (their families' declarations), so each worker reports the same set
        "environment": environment(threads or torch.get_num_threads(), job["device"], library_versions(job.get("run_variants") or [label])),
    }
    result["notes"] += calibration_notes(job, label, tokenizer)
    channel.progress("quality", 0.0, f"quality of {label} on {job['data_name']}")
    result["quality"] = compute_quality(job, variant, tokenizer, channel)

    result.update(latency=[], dataset_throughput={})
    result.update(get_scenario(job.get("scenario")).measure(job, variant, tokenizer, channel))   # core/scenarios/<name>.py
    if result.get("kernels"):   # which kernels ran, as the runtime said (core.measure.kernels)
        result["notes"].append(result["kernels"][0].upper() + result["kernels"][1:] + ".")
    result["peak_rss_bytes"] = peak_rss_bytes()
    channel.progress("latency", 1.0, f"{label} done")
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m core.engine.runner JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    for key, value in thread_env(job.get("threads")).items():
        os.environ[key] = value
    channel = Channel()
    out = Path(job["result"])
    from ..execution import wire

    started = time.perf_counter()
    try:
        result = run_job(job, channel)
        result["worker_s"] = round(time.perf_counter() - started, 3)
        wire.write_json(out, result)
        channel.send(phase="done", fraction=1.0, message="done")
        return 0
    except BaseException as err:  # noqa: BLE001 - a user error, or a bug or a crash of a library (its traceback kept in the worker's log)
        error = wire.error_from_exception(err)
        if error.kind == wire.BUG:
            traceback.print_exc()
        wire.write_json(out, wire.error_payload(error))
        channel.send(phase="done", fraction=1.0, message="failed")
        return 3 if error.for_user else 1

if __name__ == "__main__":
    sys.exit(main())
