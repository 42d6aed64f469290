"""Where a model comes from: a bundled name, a Hugging Face hub id, or a local folder.

``resolve(name)`` turns any of the three into a :class:`Source` (a local HF-format folder, its
task and a fingerprint) without loading weights; ``load_model(source)`` loads it. Weights are only
ever read from safetensors, and ``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ..errors import QlabError, SourceError, first_line
from ..paths import default_store_root
from ..tasks import check_task, get_task, infer_task

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
HUB_TIMEOUT_S = 3.0
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "merges.txt", "vocab.*"]


@dataclass
class Source:
    name: str          # what the user typed (bundled name, hub id or folder)
    kind: str          # "bundled" | "hub" | "local"
    path: Path         # a local Hugging Face-format folder
    task: str
    fingerprint: str   # hash of the weights, or the hub revision
    labels: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "path": str(self.path), "task": self.task, "fingerprint": self.fingerprint}


@dataclass
class LoadedModel:
    source: Source
    model: object      # a torch.nn.Module in eval mode
    tokenizer: object  # a fast tokenizer

    @property
    def task(self) -> str:
        return self.source.task


# -- fingerprints -----------------------------------------------------------------------------
_FINGERPRINTS: dict[tuple, str] = {}


def fingerprint_folder(path: Path) -> str:
    """sha256 over the weight files and config (memoised on size and mtime)."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and (p.suffix in (".safetensors", ".json", ".onnx")) and p.name != "manifest.json")
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stamp not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for p in files:
            digest.update(p.relative_to(path).as_posix().encode())
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        _FINGERPRINTS[stamp] = digest.hexdigest()[:24]
    return _FINGERPRINTS[stamp]


# -- folders ----------------------------------------------------------------------------------
def _read_config(path: Path) -> dict:
    cfg = path / "config.json"
    if not cfg.is_file():
        raise SourceError(f"'{path}' is not a model folder: it has no config.json. Point to a folder saved with save_pretrained (config.json + *.safetensors).")
    try:
        return json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SourceError(f"'{path}/config.json' cannot be read as JSON ({err.__class__.__name__}); re-save the model with save_pretrained.") from None


def folder_source(path: Path, name: str, kind: str, task: str | None, fingerprint: str | None = None) -> Source:
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise SourceError(f"Model folder '{name}' does not exist; give a bundled name, a hub id or an existing folder.")
    config = _read_config(path)
    if not any(path.glob("*.safetensors")):
        if any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pth")):
            raise SourceError(f"'{name}' has only pickled weights (*.bin/*.pt); the lab loads safetensors only. "
                              "Re-save it with save_pretrained(safe_serialization=True).")
        raise SourceError(f"'{name}' is not a model folder: it has no *.safetensors weights.")
    is_st = (path / "modules.json").is_file() or (path / "sentence_bert_config.json").is_file()
    inferred = infer_task(config.get("architectures"), is_sentence_transformer=is_st)
    task = check_task(task) if task else inferred
    if task is None:
        raise SourceError(f"Cannot tell the task of '{name}' from its config; choose one of embedding, classification, causal-lm.")
    labels = [config["id2label"][k] for k in sorted(config.get("id2label", {}), key=int)] if get_task(task).has_labels else []
    return Source(name=name, kind=kind, path=path, task=task, fingerprint=fingerprint or fingerprint_folder(path), labels=labels)


# -- the hub ----------------------------------------------------------------------------------
def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    port = urlparse(endpoint).port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_cache_dir() -> Path:
    """Hub downloads land inside the model store (``<store root>/hub``), so they count against its size limit."""
    return default_store_root() / "hub"


def cached_hub_snapshot(hub_id: str, revision: str | None) -> str | None:
    """A snapshot already on disk (the store's hub folder first, then the user's Hugging Face cache): no network."""
    from huggingface_hub import snapshot_download

    for cache_dir in (hub_cache_dir(), None):
        try:
            return snapshot_download(hub_id, revision=revision, allow_patterns=HUB_FILES, local_files_only=True, cache_dir=cache_dir)
        except Exception:  # noqa: BLE001 - not cached there
            continue
    return None


def _with_deadline(fn, seconds: float, what: str):
    """Run ``fn()`` and give up after ``seconds`` (the worker thread is a daemon; the job process ends after the error)."""
    import threading

    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller
            box["error"] = err

    worker = threading.Thread(target=target, name="qlab-hub", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise SourceError(f"{what} timed out after {seconds:.0f} s (QLAB_HUB_TIMEOUT_S); try again later or pick another model.")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def hub_file_list(hub_id: str, revision: str | None = None, timeout: float = 30.0) -> tuple[str, list[tuple[str, int | None]]]:
    """(commit sha, [(path, size)]) of the files a download of ``hub_id`` would fetch: every file of the repository's
    tree, subfolders included, that matches the lab's patterns. Only the file list is requested; nothing is downloaded."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils import filter_repo_objects

    api = HfApi()
    sha = api.model_info(hub_id, revision=revision, timeout=timeout).sha
    tree = [f for f in api.list_repo_tree(hub_id, revision=sha, recursive=True) if isinstance(f, RepoFile)]
    files = [(f.path, getattr(f.lfs, "size", None) if f.lfs is not None else f.size) for f in tree]
    return sha, list(filter_repo_objects(files, allow_patterns=HUB_FILES, key=lambda item: item[0]))


def download_hub_model(hub_id: str, revision: str | None = None, *, pol=None, store_limit: int | None = None) -> str:
    """Download a hub model into the store's hub folder, after checking its total size (subfolders included) against
    the limits from the repository's file list, and within the hub time limit. Returns the snapshot folder."""
    from huggingface_hub import hf_hub_download

    from ..access import hosting

    pol = pol or hosting.policy()
    started = time.monotonic()
    budget = float(pol.hub_timeout_s)

    def remaining() -> float:
        return budget - (time.monotonic() - started)

    sha, files = _with_deadline(lambda: hub_file_list(hub_id, revision, timeout=min(30.0, budget)), budget, f"Listing the files of '{hub_id}'")
    if store_limit is None:
        from ..storage.store import default_size_limit

        store_limit = default_size_limit()
    hosting.check_hub_download(hub_id, files, pol, store_limit=store_limit)
    if not any(path.endswith(".safetensors") for path, _ in files):
        raise SourceError(f"'{hub_id}' has no *.safetensors weights; the lab loads safetensors only.")
    cache_dir = hub_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    folder = None
    for path, _ in files:
        left = remaining()
        if left <= 0:
            raise SourceError(f"Downloading '{hub_id}' timed out after {budget:.0f} s (QLAB_HUB_TIMEOUT_S); try again later or pick another model.")
        local = _with_deadline(lambda path=path: hf_hub_download(hub_id, path, revision=sha, cache_dir=cache_dir, etag_timeout=min(10.0, left)),
                               left, f"Downloading '{hub_id}'")
        folder = Path(local).parents[len(Path(path).parts) - 1]
    return str(folder)


def hub_source(hub_id: str, task: str | None, revision: str | None = None) -> Source:
    path = cached_hub_snapshot(hub_id, revision)  # already downloaded once: no network needed
    if path is None:
        from ..bundled import BUNDLED

        if not hub_reachable():
            raise SourceError(
                f"Model '{hub_id}' is not bundled or cached here and the Hugging Face hub cannot be reached; "
                f"use a bundled model ({', '.join(BUNDLED)}) or a local folder in Hugging Face format."
            )
        try:
            path = download_hub_model(hub_id, revision)
        except SourceError:
            raise
        except QlabError:
            raise
        except Exception as err:  # noqa: BLE001 - any other failure of the hub client is one line
            raise SourceError(f"Model '{hub_id}' could not be fetched from the Hugging Face hub ({err.__class__.__name__}); "
                              "check the id and your network.") from None
    revision_sha = Path(path).name  # snapshots/<commit sha>
    return folder_source(Path(path), hub_id, "hub", task, fingerprint=f"hub:{hub_id}@{revision_sha}")


# -- bundled models ---------------------------------------------------------------------------
def bundled_source(name: str, task: str | None, *, store=None, progress=None) -> Source:
    """A bundled model as a Source (trained and stored first if it is one of the models built here)."""
    from ..bundled import BUNDLED, bundled_path, wrong_task

    model = BUNDLED[name]
    error = wrong_task(name, task)
    if error:
        raise error
    return folder_source(bundled_path(name, store=store, progress=progress), name, "bundled", model.task)


# -- entry point ------------------------------------------------------------------------------
def resolve(name: str, task: str | None = None, *, store=None, progress=None, allow_local: bool = True) -> Source:
    """Turn a bundled name, local folder or hub id into a :class:`Source` (building bundled models if needed)."""
    from ..bundled import BUNDLED

    name = (name or "").strip()
    if not name:
        raise SourceError("No model given: name a bundled model (" + ", ".join(BUNDLED) + "), a hub id or a local folder.")
    if name in BUNDLED:
        return bundled_source(name, task, store=store, progress=progress)
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name and Path(name).expanduser().exists()
    if looks_like_path or Path(name).expanduser().is_dir():
        if not allow_local:
            raise SourceError("Local model folders are disabled on this hosted lab; use a bundled model or a hub id.")
        return folder_source(Path(name), name, "local", task)
    if HUB_ID.match(name):
        return hub_source(name, task)
    raise SourceError(f"'{name}' is not a bundled model, an existing folder or a valid hub id; bundled models are: {', '.join(BUNDLED)}.")


def model_class(task: str):
    import transformers

    return getattr(transformers, get_task(task).model_class)


def quiet_transformers() -> None:
    """No progress bars or advisory chatter from transformers on the user's terminal."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_tokenizer(source: Source):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source.path), trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    if get_task(source.task).generates:   # a causal LM reads its next token at the last real position
        tok.padding_side = "right"
    return tok


def load_model(source: Source, *, dtype=None, attn: str = "eager") -> LoadedModel:
    """Load the fp32 (or ``dtype``) model and tokenizer from a resolved source, in eval mode."""
    quiet_transformers()
    kwargs = dict(trust_remote_code=False, use_safetensors=True, attn_implementation=attn)
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        model = model_class(source.task).from_pretrained(str(source.path), **kwargs)
    except (OSError, ValueError) as err:
        raise SourceError(f"'{source.name}' could not be loaded as a {source.task} model: {first_line(err, 200) or err.__class__.__name__}") from None
    model.eval()
    return LoadedModel(source=source, model=model, tokenizer=load_tokenizer(source))


# The config keys that give a model's context length, in the order they are read: the first positive whole number
# wins. GPT-2 style configs say n_positions (transformers maps max_position_embeddings to it), most others
# max_position_embeddings; n_ctx and max_sequence_length are older spellings.
POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length")


def max_positions(config) -> int | None:
    """How many tokens the model can attend to, from its config (None when it does not say).

    ``config`` is a transformers config object, a ``config.json`` dict, or a model folder (its ``config.json`` is read);
    the keys are read in the order of :data:`POSITION_KEYS`.
    """
    if isinstance(config, (str, os.PathLike)):
        try:
            config = json.loads((Path(config) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    for key in POSITION_KEYS:
        value = config.get(key) if isinstance(config, dict) else getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return int(value)
    return None


def skeleton(source: Source, dtype=None):
    """The model architecture from the source's config, randomly initialised (weights come from an artifact)."""
    from transformers import AutoConfig

    quiet_transformers()
    config = AutoConfig.from_pretrained(str(source.path), trust_remote_code=False)
    config._attn_implementation = "eager"
    model = model_class(source.task).from_config(config, attn_implementation="eager")
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()
