"""Shared fixtures: a private model store for the whole session, tiny model folders, and a CLI runner.

* The session store: ``QLAB_CACHE_DIR`` points at a temp folder before any test runs (set in ``os.environ`` so
  worker subprocesses and ``python -m core`` inherit it); the repository's ``cache/`` is never touched.
* ``HF_HUB_OFFLINE=1``: nothing tries the network, and unknown names fail at once.
* Tiny models (random weights; code paths only, never evidence of quality or speed) are built once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session", autouse=True)
def session_store(tmp_path_factory):
    """A fresh model store for the session (via QLAB_CACHE_DIR, so subprocesses use it too)."""
    saved = {k: os.environ.get(k) for k in ("QLAB_CACHE_DIR", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "QLAB_WORKER_POOL")}
    root = tmp_path_factory.mktemp("qlab-store")
    os.environ["QLAB_WORKER_POOL"] = "0"   # in-process tests start fresh workers (AppTest runs app.py, which would start a pool)
    os.environ["QLAB_CACHE_DIR"] = str(root)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 (n_positions 64) with a byte-level BPE tokenizer, saved with save_pretrained."""
    from tiny_models import make_tiny_gpt2

    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2") / "model")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with grouped-query attention, saved with save_pretrained."""
    from tiny_models import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT sequence classifier with labels neg/neu/pos and the MiniLM tokenizer."""
    from tiny_models import make_tiny_bert_classifier

    return make_tiny_bert_classifier(tmp_path_factory.mktemp("tiny-bert-clf") / "model")


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory) -> Path:
    """A 2-layer BertModel (embedding task) with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tiny_models import minilm_tokenizer_dir

    folder = tmp_path_factory.mktemp("tiny-bert-emb") / "model"
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                        max_position_embeddings=128, architectures=["BertModel"])
    BertModel(config).eval().save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return folder


def run_cli(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m core ARGS`` in a subprocess (inherits the session store); returns the completed process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=str(cwd or ROOT))


@pytest.fixture(scope="session")
def cli():
    return run_cli


def chromium_or_skip(what: str = "the browser tests") -> None:
    """Debian's Chromium for the Playwright tests: under CI=true its absence fails the test, elsewhere it skips, saying why."""
    if Path("/usr/bin/chromium").exists():
        return
    message = "Debian's Chromium is not installed at /usr/bin/chromium; run scripts/install_chromium.sh (apt-get install -y chromium)."
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} CI must run {what}.")
    pytest.skip(message)


@pytest.fixture()
def faulty(monkeypatch):
    """The test-only family whose outputs go wrong at one sequence length (tests/faulty_family), registered for this
    test and its workers (QLAB_PLUGIN_FAMILIES, and tests/ on their PYTHONPATH)."""
    import os
    from pathlib import Path

    from core.recipes import registry

    monkeypatch.setenv(registry.PLUGINS_VAR, "faulty_family")
    here = str(Path(__file__).resolve().parent)   # the workers import the plug-in from tests/
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    registry.install([*registry.FAMILIES, *registry.plugin_families()])
    yield
    registry.install(registry.FAMILIES)
