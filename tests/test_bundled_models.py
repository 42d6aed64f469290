"""The offline defaults: bundled sample data and the two models this project trains itself."""

from __future__ import annotations

import csv
import math
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.bundled import classifier as clf  # noqa: E402
from core.bundled import demo_gpt  # noqa: E402

torch.set_num_threads(2)

SAMPLES = ROOT / "data" / "samples"
FRESH = ROOT / "tests" / "data" / "news_fresh.csv"
LABELS = {"world", "sports", "business", "science"}
TINY = {"n_layer": 2, "n_embd": 64, "n_head": 2, "n_positions": 64}


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    raw = path.read_bytes()
    raw.decode("utf-8")  # strict: the sample files are UTF-8
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


# ----------------------------------------------------------------------------------------- sample data

@pytest.mark.parametrize(
    "name, minimum, exact",
    [
        ("data/samples/classification_train.csv", 90, None),
        ("data/samples/classification_test.csv", 30, 30),
        ("tests/data/news_fresh.csv", 25, 25),
    ],
)
def test_news_files_have_four_balanced_labels(name, minimum, exact):
    header, rows = read_csv(ROOT / name)
    assert header == ["text", "label"]
    counts = Counter(r["label"] for r in rows)
    assert set(counts) == LABELS
    for label, n in counts.items():
        assert n >= minimum, (label, n)
        if exact is not None:
            assert n == exact, (label, n)
    for r in rows:
        words = len(r["text"].split())
        assert 5 <= words <= 40, r["text"]
    texts = [norm(r["text"]) for r in rows]
    assert len(set(texts)) == len(texts), "duplicate sentences within the file"


def test_news_splits_do_not_overlap():
    splits = {
        name: {norm(r["text"]) for r in read_csv(path)[1]}
        for name, path in [
            ("train", SAMPLES / "classification_train.csv"),
            ("test", SAMPLES / "classification_test.csv"),
            ("fresh", FRESH),
        ]
    }
    assert not splits["train"] & splits["test"]
    assert not splits["train"] & splits["fresh"]
    assert not splits["test"] & splits["fresh"]
    # no near-duplicates either: no pair across splits shares most of its words
    def words(s):
        return set(s.split())
    for a_name, b_name in [("train", "test"), ("train", "fresh"), ("test", "fresh")]:
        for a in splits[a_name]:
            for b in splits[b_name]:
                wa, wb = words(a), words(b)
                assert len(wa & wb) / len(wa | wb) < 0.6, (a, b)


def test_embedding_samples():
    header, rows = read_csv(SAMPLES / "embedding_sentences.csv")
    assert header == ["text"]
    assert 60 <= len(rows) <= 120
    assert len({r["text"] for r in rows}) == len(rows)

    header, pairs = read_csv(SAMPLES / "embedding_pairs.csv")
    assert header == ["sentence1", "sentence2", "score"]
    assert len(pairs) >= 50
    scores = [float(p["score"]) for p in pairs]
    assert all(0.0 <= s <= 5.0 for s in scores)
    assert sum(s >= 4.4 for s in scores) >= 10      # paraphrases
    assert sum(2.0 <= s <= 3.5 for s in scores) >= 10   # related
    assert sum(s <= 1.0 for s in scores) >= 10      # unrelated
    assert all(p["sentence1"].strip() and p["sentence2"].strip() for p in pairs)


def test_causal_lm_sample_is_held_out_from_the_demo_gpt_corpus():
    text = (SAMPLES / "causal_lm.txt").read_text(encoding="utf-8")
    assert 600 <= len(text.split()) <= 1000
    train, heldout = demo_gpt.collect_corpus()
    corpus = re.findall(r"[a-z0-9_]+", (train + heldout).lower())
    grams = {tuple(corpus[i:i + 8]) for i in range(len(corpus) - 7)}
    words = re.findall(r"[a-z0-9_]+", text.lower())
    shared = [" ".join(words[i:i + 8]) for i in range(len(words) - 7) if tuple(words[i:i + 8]) in grams]
    assert not shared, shared


# ----------------------------------------------------------------------------------------- demo-gpt

def test_demo_gpt_corpus_is_deterministic_and_split():
    train, heldout = demo_gpt.collect_corpus()
    assert len(train) > 500_000 and len(heldout) > 50_000
    demo_gpt._collect_raw.cache_clear()
    assert demo_gpt.collect_corpus() == (train, heldout)   # a second, independent collection
    train_docs, heldout_docs = set(train.split("\n\n")), set(heldout.split("\n\n"))
    assert not (train_docs & heldout_docs) - {""}
    small_train, small_heldout = demo_gpt.collect_corpus(200_000)
    assert len(small_train) <= 200_000 and train.startswith(small_train.rstrip("\n"))
    assert len(small_heldout) <= 40_000


def test_demo_gpt_piecewise_encoding_matches_whole_text():
    train, heldout = demo_gpt.collect_corpus(100_000)
    tokenizer = demo_gpt.train_tokenizer(train, vocab_size=800, model_max_length=64)
    for text in (train, heldout):
        assert demo_gpt._encode(tokenizer, text) == tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids
    assert tokenizer.decode(tokenizer(heldout[:500])["input_ids"]) == heldout[:500]


def _tiny_build(out_dir: Path, seed: int = 0, **kwargs) -> dict:
    args = dict(seed=seed, budget_s=None, max_steps=20, corpus_chars=200_000, config=TINY, vocab_size=1000)
    args.update(kwargs)
    return demo_gpt.build_demo_gpt(out_dir, **args)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


@pytest.mark.slow
def test_demo_gpt_tiny_build_end_to_end(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    seen = []
    m1 = _tiny_build(tmp_path / "a", progress=lambda f, msg: seen.append((f, msg)))
    m2 = _tiny_build(tmp_path / "b")
    m3 = _tiny_build(tmp_path / "c", seed=1)

    for m in (m1, m2, m3):
        assert m["steps"] == 20 and m["stopped_by"] == "max_steps"
        for key in ("heldout_perplexity", "unigram_perplexity"):
            assert math.isfinite(m[key]) and m[key] > 1
        assert m["train_tokens"] > 10_000 and m["params"] > 0 and m["build_s"] > 0

    w1, w2, w3 = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert w1.keys() == w2.keys()
    assert all(torch.equal(w1[k], w2[k]) for k in w1), "same seed must give identical weights"
    assert any(not torch.equal(w1[k], w3[k]) for k in w1), "a different seed should give different weights"
    assert m1["heldout_perplexity"] == m2["heldout_perplexity"]

    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert model.config.model_type == "gpt2" and model.config.n_positions == TINY["n_positions"]
    assert tokenizer.eos_token == tokenizer.pad_token == tokenizer.bos_token == demo_gpt.EOT
    enc = tokenizer("Return the number of items.", return_tensors="pt")
    with torch.inference_mode():
        out = model(**enc, labels=enc["input_ids"])
    assert math.isfinite(float(out.loss))
    assert not list(tmp_path.glob(".*")), "temporary build folders must be cleaned up"


@pytest.mark.slow
def test_demo_gpt_budget_path_and_atomic_failure(tmp_path):
    # Under a generous time budget, max_steps is what ends the run.
    m = _tiny_build(tmp_path / "budget", budget_s=120, max_steps=8)
    assert m["planned_steps"] == 8 and m["steps"] == 8 and m["stopped_by"] == "max_steps"
    assert (tmp_path / "budget" / "model.safetensors").exists()

    # A run whose length was planned from the time budget replays exactly with max_steps = planned_steps.
    planned = _tiny_build(tmp_path / "planned", budget_s=8.0, max_steps=None)
    assert planned["steps"] <= planned["planned_steps"] and planned["stopped_by"] in ("budget_plan", "budget")
    if planned["stopped_by"] == "budget_plan":   # not cut short by a sudden slowdown of the machine
        assert planned["steps"] == planned["planned_steps"] > 20
        replay = _tiny_build(tmp_path / "replay", max_steps=planned["planned_steps"])
        w1, w2 = _weights(tmp_path / "planned"), _weights(tmp_path / "replay")
        assert all(torch.equal(w1[k], w2[k]) for k in w1)
        assert replay["heldout_perplexity"] == planned["heldout_perplexity"]

    # A build that dies part way leaves nothing at out_dir and no temporary folder behind.
    def explode(fraction, message):
        if "step 5/" in message:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        _tiny_build(tmp_path / "killed", progress=explode)
    assert not (tmp_path / "killed").exists()
    assert not list(tmp_path.glob(".killed*"))


def test_atomic_dir_replaces_only_on_success(tmp_path):
    from core.bundled.build_utils import atomic_dir

    out = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("killed while saving")
    assert not out.exists() and not list(tmp_path.iterdir())

    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text('{"v": 1}')
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text('{"v": 2}')
    assert (out / "config.json").read_text() == '{"v": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# ----------------------------------------------------------------------------------------- classifier

def _accuracy(model, tokenizer, path: Path) -> float:
    _, rows = read_csv(path)
    correct = 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), 32):
            batch = rows[start:start + 32]
            enc = tokenizer([r["text"] for r in batch], padding=True, truncation=True, return_tensors="pt")
            predicted = model(**enc).logits.argmax(-1).tolist()
            correct += sum(model.config.id2label[p] == r["label"] for p, r in zip(predicted, batch))
    return correct / len(rows)


@pytest.mark.slow
def test_minilm_classifier_generalises(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "minilm-classifier"
    metrics = clf.build_minilm_classifier(out)   # ~40 s on 2 idle cores (wall time is not asserted: shared CI)
    assert not list(tmp_path.glob(".*")), "temporary build folders must be cleaned up"

    model = AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.id2label == {0: "world", 1: "sports", 2: "business", 3: "science"}
    assert model.config.label2id == {"world": 0, "sports": 1, "business": 2, "science": 3}

    test_acc = _accuracy(model, tokenizer, SAMPLES / "classification_test.csv")
    fresh_acc = _accuracy(model, tokenizer, FRESH)
    assert test_acc >= 0.85, test_acc
    assert fresh_acc >= 0.85, fresh_acc
    assert abs(test_acc - metrics["heldout_accuracy"]) < 1e-9
