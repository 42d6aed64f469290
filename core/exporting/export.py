"""Take a built variant home: write a self-contained folder that runs without the lab.

``export_variant(model, spec, out)`` builds the variant into the store if it is not there, refuses a damaged store
entry, and writes ``out/``:

* the weights in a safe format, per artifact kind (each recipe's family declares its exporter, in its own folder,
  ``core/recipes/<family>/``; ``EXPORTERS`` is the registry's table of them):
  - ONNX variants: ``model.onnx`` (plus its external data files, if any), copied from the store;
  - weight-only int8: ``weights.safetensors`` with the int8 weights and their float32 scales (and zero points),
    laid out in each parameter's own shape so that ``W = (q - zp) / scale`` is one broadcast (GPT-2's Conv1D
    weights, quantized per output channel as [out, in], are stored transposed back to [in, out]);
  - dynamic int8 (torch.ao): the source's fp32 safetensors plus the exact recipe applied at load
    (``quantize_dynamic`` with the engine, qconfig and module list the lab used: bit-identical int8 weights;
    packed int8 modules have no safe serialized form);
  - torchao int8: the dequantized absmax weights (the exact floats the lab quantizes) and ``quantize_`` at load;
  - fp32 / bf16 / fp16 / TorchScript: the stored ``save_pretrained`` safetensors (TorchScript re-traces at load);
* the tokenizer files (``tokenizer.json`` pads to the longest text and truncates as the lab does, so the
  ``tokenizers`` library alone reproduces the lab's inputs);
* ``qlab.json``: the spec and parameters, source fingerprint, input and output names and dtypes, task,
  post-processing, library versions, the summary measured on this hardware (from a saved run, if one has this
  variant) and this machine's CPU and instruction sets;
* ``README.md`` with a load-and-run snippet (``core.exporting.snippets``) and ``requirements.txt``.

The folder is written beside ``out`` and renamed into place when complete; ``--zip`` adds ``out.zip`` holding the
same folder. The store entry is only read, never written.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import env
from ..errors import ExportError, QlabError, RecipeError
from ..recipes.registry import EXPORTERS, NOT_EXPORTED, library_versions
from ..tasks import get_task
from .snippets import MAX_LINES, OUTPUT, RUNTIMES, readme, snippet

FORMAT = 1
META, README, REQUIREMENTS = "qlab.json", "README.md", "requirements.txt"
MAX_RUNS_SCANNED = 500   # saved runs read when looking for this variant's measurements (newest first)
STORED_SUFFIXES = (".onnx", ".safetensors", ".data", ".bin")


@dataclass
class Exported:
    folder: Path
    zip_path: Path | None
    meta: dict
    code: str

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())


@dataclass
class Job:
    """What a writer needs: the resolved source, the recipe and its parameters, and the stored entry (read only)."""

    source: object          # core.inputs.sources.Source
    recipe: object          # core.recipes.Recipe
    params: dict
    label: str
    entry: object           # core.storage.store.StoreEntry
    max_length: int

    @property
    def art(self) -> Path:
        return Path(self.entry.path)

    def art_json(self, name: str) -> dict:
        path = self.art / name
        return json.loads(path.read_text()) if path.is_file() else {}


# -- tokenizer, inputs and outputs -------------------------------------------------------------------
def write_tokenizer(job: Job, out: Path, needs_fast: bool) -> dict:
    """The lab's tokenizer (pad token and padding side as the lab sets them), with padding to the longest text and
    truncation at the lab's max length written into tokenizer.json, so the tokenizers library alone encodes alike."""
    from ..inputs.sources import load_tokenizer

    tok = load_tokenizer(job.source)
    tok.save_pretrained(str(out))
    path = out / "tokenizer.json"
    if not path.is_file():
        if needs_fast:
            raise ExportError(f"Model '{job.source.name}' has no fast tokenizer (tokenizer.json), which ONNX exports need; export a torch variant instead.")
        return {"files": sorted(p.name for p in out.glob("*token*") if p.is_file()), "max_length": job.max_length}
    from tokenizers import Tokenizer

    backend = Tokenizer.from_file(str(path))
    backend.enable_padding(direction="right", pad_id=int(tok.pad_token_id), pad_token=str(tok.pad_token), pad_type_id=0)
    backend.enable_truncation(max_length=int(job.max_length))
    backend.save(str(path))
    return {"file": "tokenizer.json", "max_length": int(job.max_length), "padding": "right, to the longest text of the batch",
            "pad_token": str(tok.pad_token), "pad_id": int(tok.pad_token_id), "truncation": f"at {job.max_length} tokens"}


def _torch_io(task: str, dtype: str, labels: list[str], config) -> tuple[list[dict], list[dict]]:
    inputs = [{"name": n, "dtype": "int64", "shape": ["batch", "sequence"]} for n in ("input_ids", "attention_mask")]
    t = get_task(task)
    return inputs, [{"name": t.output_name, "dtype": dtype, "shape": t.output_shape(config, labels)}]


def postprocessing(task: str, labels: list[str]) -> dict:
    return get_task(task).postprocessing(labels)


# -- what the lab measured -------------------------------------------------------------------------
def measured_summary(model: str, task: str, label: str, size_bytes: int | None = None, root=None) -> tuple[dict | None, str | None]:
    """This variant's measurements from the newest saved run on this machine (same CPU), or (None, why not).

    A run whose artifact size differs from the stored entry's by more than 0.1% measured another build
    (the model changed since) and is skipped.
    """
    from ..reporting.compare import quality_delta, reference_quality
    from ..reporting.results import as_report
    from ..storage import history

    cpu = env.cpu_info()
    folder = history.runs_dir(root)
    try:
        paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_RUNS_SCANNED]
    except OSError:
        paths = []
    elsewhere = False
    for path in paths:
        try:
            rep = history.validate_report(json.loads(path.read_text(encoding="utf-8")), name=path.name)
        except (OSError, ValueError, QlabError):
            continue
        if rep.get("model") != model or rep.get("task") != task:
            continue
        raw = next((r for r in rep["results"] if r.get("variant") == label and not r.get("error")), None)
        if raw is None:
            continue
        machine = rep.get("environment") or {}
        if machine.get("cpu") != cpu["model"] or machine.get("arch", cpu["arch"]) != cpu["arch"]:
            elsewhere = True
            continue
        if size_bytes and raw.get("size_bytes") and abs(int(raw["size_bytes"]) - int(size_bytes)) > max(4096, 0.001 * size_bytes):
            continue
        report = as_report(rep)
        result = report.result(label)
        batches = sorted({c.batch_size for c in result.latency})
        ref_q = reference_quality(report)
        delta, unit = quality_delta(task, result.quality, ref_q)
        data = rep.get("data") or {}
        return {
            "run_id": rep.get("run_id") or path.stem, "created": rep.get("created", ""),
            "data": f"{data.get('name', '?')} ({data.get('rows', '?')} rows)",
            "size_bytes": result.size_bytes, "param_bytes": result.param_bytes, "load_s": result.load_s,
            "p50_ms_by_batch": {str(b): result.p50_at(b) for b in batches},
            "latency": [{"batch_size": c.batch_size, "seq_len": c.seq_len, "p50_ms": c.p50_ms, "p90_ms": c.p90_ms} for c in result.latency],
            "quality": dict(result.quality), "reference_quality": dict(ref_q),
            "quality_vs_fp32": {"delta": delta, "unit": unit} if delta is not None else None,
            "cpu": machine.get("cpu"), "arch": machine.get("arch"), "instruction_sets": machine.get("instruction_sets") or [],
            "threads": machine.get("threads"), "quantized_engine": machine.get("quantized_engine"), "versions": machine.get("versions") or {},
        }, None
    if elsewhere:
        return None, f"saved runs measured '{label}' of {model} on other CPUs only; timings do not transfer, so none are copied here."
    return None, f"no saved run has '{label}' of {model} ({task}); compare it on the dashboard to measure it."


# -- the folder ------------------------------------------------------------------------------------
def check_out_dir(out, make_zip: bool = False) -> Path:
    """The output folder, checked before anything is built: new or empty, its parent creatable and writable."""
    out = Path(str(out)).expanduser()
    if not str(out).strip() or out.name in ("", ".", ".."):
        raise ExportError(f"'{out}' is not a folder name to export into; give a new folder, e.g. --out exports/minilm-onnx-int8.")
    if out.exists():
        if not out.is_dir():
            raise ExportError(f"'{out}' exists and is not a folder; give a new folder to export into.")
        if any(out.iterdir()):
            raise ExportError(f"'{out}' already exists and is not empty; give a new folder (the export never overwrites files).")
    if make_zip and zip_path_for(out).exists():
        raise ExportError(f"'{zip_path_for(out)}' already exists; give another --out or remove that zip first.")
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ExportError(f"Cannot create '{out}': '{ancestor}' is a file, not a folder; give another --out.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ExportError(f"Cannot write to '{ancestor}' (permission denied); give an --out folder you can write to.")
    try:  # a real write where the folder will be created (nothing is created before the export is known to go ahead)
        probe = ancestor / f".qlab-write-probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ExportError(f"Cannot write to '{ancestor}' ({err.strerror or err.__class__.__name__}); give an --out folder you can write to.") from None
    return out


def zip_path_for(out: Path) -> Path:
    return out.with_name(out.name + ".zip")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _requirements(runtime: tuple[str, ...]) -> str:
    from importlib import metadata

    lines = []
    for name in runtime:
        try:
            lines.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            lines.append(name)
    return "\n".join(lines) + "\n"


def _verify(store, key: str) -> list[str]:
    """The store's integrity check of one entry: ``ModelStore.verify_entry`` where the store has it; until then the
    sizes the store recorded (per file if the manifest lists files, else the entry's total) against the disk."""
    check = getattr(store, "verify_entry", None)
    if callable(check):
        return [str(p) for p in check(key)]
    from ..storage.store import MANIFEST, folder_size

    path = store.artifact_dir(key)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return [f"{MANIFEST} is missing or unreadable"]
    files = manifest.get("files")
    if isinstance(files, dict) and files:
        problems = []
        for name, info in files.items():
            expected = info.get("size", info.get("bytes")) if isinstance(info, dict) else info
            actual = (path / name).stat().st_size if (path / name).is_file() else None
            if actual is None:
                problems.append(f"{name} is missing")
            elif expected is not None and int(expected) != actual:
                problems.append(f"{name} is {actual} bytes, the store recorded {int(expected)}")
        return problems
    expected = (store.index.get(key) or {}).get("size_bytes")
    actual = folder_size(path)
    if expected is not None and int(expected) != actual:
        return [f"its files hold {actual} bytes, the store recorded {int(expected)}"]
    return []


def _refuse_damaged(store, key: str, label: str, model: str) -> None:
    problems = _verify(store, key)
    if problems:
        raise ExportError(f"The stored '{label}' of {model} is damaged ({problems[0]}), so it was not exported; "
                          f"delete it (python -m core store --delete {key[:12]}) and export again to rebuild it.")


def _write_zip(folder: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():  # weights barely compress (int8 ONNX: 9%) and deflating them is slow: store them as they are
                    method = zipfile.ZIP_STORED if path.suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                    zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}", compress_type=method)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def export_variant(model: str, spec: str, out, *, task: str | None = None, make_zip: bool = False, store=None,
                   build: bool = True, max_bytes: int | None = None, allow_local: bool = True, runs_root=None,
                   progress: Callable[[str], None] | None = None) -> Exported:
    """Write ``spec`` of ``model`` as a self-contained folder at ``out`` (and ``out.zip`` with ``make_zip``).

    Builds the variant into the store first if it is missing (unless ``build`` is False), refuses a damaged store
    entry, and refuses a folder larger than ``max_bytes``. Raises ExportError / RecipeError / SourceError with one line.
    """
    from ..engine.variants import get_variant, variant_key
    from ..inputs.sources import max_positions, resolve
    from ..recipes import resolve as resolve_spec
    from ..storage.store import ModelStore

    say = progress or (lambda message: None)
    recipe, params, label = resolve_spec(spec)
    exporter = EXPORTERS.get(recipe.name)
    why = NOT_EXPORTED.get(recipe.name) or (exporter.refuse(params) if exporter else None)
    if why:
        raise ExportError(f"Variant '{label}' cannot be exported yet ({why} have no load-and-run snippet); "
                          "export onnx-int4 for 4-bit weights, or a per-channel or per-tensor int8 variant.")
    if exporter is None:
        raise ExportError(f"Variant '{label}' has no export format yet; export one of: {', '.join(EXPORTERS)}.")
    out = check_out_dir(out, make_zip)
    source = resolve(model, task, store=store, allow_local=allow_local)
    reason = recipe.unavailable_reason("cpu", source.task, params)
    if reason:
        raise RecipeError(f"Variant '{label}' cannot be exported here: {reason}")
    store = store or ModelStore()
    key = variant_key(source, recipe.name, params)
    stored = key in store
    if stored:
        _refuse_damaged(store, key, label, model)   # before lookup: a damaged entry is refused, never silently replaced
        entry = store.lookup(key)
    if not stored or entry is None:
        if not build:
            raise ExportError(f"'{label}' of {model} is no longer in the store (full stores evict the least recently used); "
                              "run the comparison again to rebuild it, then download it.")
        say(f"building {label} of {model} into the store")
        get_variant(source, label, store=store)
        entry = store.lookup(key)
        _refuse_damaged(store, key, label, model)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(source.path), trust_remote_code=False)
    job = Job(source, recipe, params, label, entry, min(128, max_positions(config) or 128))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.qlab-export-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        say(f"writing {label} weights")
        block = exporter.write(job, tmp)
        tok_info = write_tokenizer(job, tmp, exporter.needs_fast_tokenizer)
        runtime = RUNTIMES[exporter.kind]
        (tmp / REQUIREMENTS).write_text(_requirements(runtime), encoding="utf-8")
        if exporter.io is not None:
            inputs, outputs = exporter.io(tmp)
        else:
            inputs, outputs = _torch_io(source.task, block.get("output_dtype", "float32"), list(source.labels), config)
        details = {**block, "max_length": job.max_length, "input_names": [i["name"] for i in inputs], "output_name": outputs[0]["name"]}
        code = snippet(exporter.kind, source.task, details)
        measured, note = measured_summary(source.name, source.task, label, entry.size_bytes, root=runs_root)
        cpu = env.cpu_info()
        files = {p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.rglob("*")) if p.is_file()}
        meta = {
            "format": FORMAT, "exported_by": "Quantization Lab",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": source.name, "task": source.task,
            "variant": {"spec": label, "recipe": recipe.name, "family": recipe.family, "params": params, "summary": recipe.summary,
                        "deprecated": recipe.deprecated},
            "source": {"name": source.name, "kind": source.kind, "fingerprint": source.fingerprint},
            "store_key": key, "store_size_bytes": entry.size_bytes,
            "runtime": list(runtime), "inputs": inputs, "outputs": outputs, "tokenizer": tok_info,
            "postprocessing": postprocessing(source.task, list(source.labels)),
            "recipe": block,
            "snippet": {"output": OUTPUT[source.task], "lines": len(code.splitlines()), "max_lines": MAX_LINES},
            "files": files,
            "versions": library_versions([label]),
            "machine": {"cpu": cpu["model"], "arch": cpu["arch"], "instruction_sets": cpu["flags"], "cores": cpu["logical_cores"]},
            "measured": measured, "measured_note": note,
        }
        (tmp / META).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        (tmp / README).write_text(readme(meta, code), encoding="utf-8")
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        if max_bytes and size > max_bytes:
            raise ExportError(f"This export of '{label}' is {size / 2**20:.0f} MB; downloads here are limited to {max_bytes / 2**20:.0f} MB. "
                              "Pick a smaller variant or model.")
        if out.exists():
            out.rmdir()   # checked empty above
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    zip_path = None
    if make_zip:
        say("zipping")
        zip_path = zip_path_for(out)
        _write_zip(out, zip_path)
    return Exported(out, zip_path, meta, code)
