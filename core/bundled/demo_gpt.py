"""Build "demo-gpt": a small GPT-2 trained here, from scratch, on Python's own documentation.

Nothing is downloaded. The corpus is the English text that ships with the running Python: the docstrings of
the standard-library modules (and of their classes, functions and methods), plus the language-reference
topics in ``pydoc_data.topics``. Every 10th module (in sorted order) is held out for evaluation, minus any
paragraph that also occurs in the training text; the reference topics are always training text.

The build trains a byte-level BPE tokenizer (``tokenizers``, 4096 tokens, ``<|endoftext|>`` special), wraps it
as a ``PreTrainedTokenizerFast``, then trains a ``GPT2LMHeadModel`` (4 layers, 256 wide, 256 positions, 4.3M
parameters) with a plain PyTorch loop: AdamW, batches of 8 x 256 tokens, a warm-up-stable-decay learning rate
(30 warm-up steps, constant, then a linear decay to zero over the last 30% of the steps), no dropout,
bfloat16 autocast where the CPU supports it natively. It saves an ordinary Hugging Face
folder (safetensors + tokenizer) that ``AutoModelForCausalLM`` / ``AutoTokenizer`` load. The folder is written
to a hidden sibling directory and renamed into place at the end, so an interrupted build leaves nothing
loadable at ``out_dir``.

These settings were tuned for a ~4 minute budget on 2 CPU cores, where the model sees about 2M tokens (the
training text is ~430K tokens): more, smaller steps, a small vocabulary and warm-up-stable-decay each helped
(at 950 steps: held-out perplexity 112 with a 30% decay, 116 with 50%, 130 with linear decay from the start).

Determinism
    Corpus, tokenizer, initialisation and data order depend only on the installed Python and ``seed``; training
    uses no dropout, so the weights are a function of (seed, settings, number of planned steps) on a given
    torch build, CPU and thread count. With ``max_steps`` and ``budget_s=None`` a run is fully reproducible.
    With a time budget the run starts (warm-up, then the constant rate) without knowing its length, timing its
    steps as it goes; at the first step where the remaining time only just fits the final decay, it fixes the
    total T, and from then on follows exactly the schedule that ``max_steps=T`` gives (the schedule is a
    function of the step and T only). So the step count adapts to how busy the machine is, and a
    budget-limited run is deterministic only *up to the step count it reached*: the metrics record
    ``planned_steps`` (T) and ``steps``, and rerunning with ``max_steps=T, budget_s=None`` reproduces the
    weights exactly unless the run was cut short (``stopped_by == "budget"``, when the machine slowed down
    during the decay).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from .build_utils import atomic_dir, quiet_transformers, torch_threads

EOT = "<|endoftext|>"
HOLDOUT_EVERY = 10          # every 10th module (sorted by name) is held-out text
VOCAB_SIZE = 4096          # a small vocabulary: cheaper output layer, and tuned best vs the unigram baseline
MODEL_CONFIG = {"n_layer": 4, "n_embd": 256, "n_head": 4, "n_positions": 256}
BATCH_SIZE = 8             # more, smaller steps beat fewer, larger ones in a short CPU budget
LEARNING_RATE = 1.5e-3      # 2e-3 gives the same result; 3e-3 is clearly worse with batches of 8
WARMUP_STEPS = 30
BUDGET_SAFETY = 0.95        # plan to finish training at 95% of budget_s (room for the machine to slow down)
RATE_WINDOW = 25            # steps timed to estimate the current speed
DECAY_FRACTION = 0.3        # the last 30% of the steps decay linearly to zero (warm-up-stable-decay)
WEIGHT_DECAY = 0.1
EVAL_MAX_TOKENS = 65_536    # held-out tokens scored (non-overlapping windows); the held-out text is larger
SAMPLE_PROMPT = "Return the number of"

Progress = Callable[[float, str], None]

# Run in a separate interpreter (-I: no user site, no PYTHON* variables, no cwd on sys.path) so the hundreds of
# imports, and whatever they print or register, stay out of the caller's process.
_COLLECTOR = r'''
import contextlib, importlib, inspect, io, json, pkgutil, sys, warnings

SKIP_TOP = {
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "readline", "rlcompleter",
    "lib2to3", "ensurepip", "pydoc_data", "webbrowser", "xxsubtype", "xxlimited", "xxlimited_35",
}

def skip(name):
    parts = name.split(".")
    return (parts[0] in SKIP_TOP or parts[0].startswith("turtle")
            or any(p.startswith("_") for p in parts)
            or any(p in ("test", "tests", "idle_test") for p in parts))

@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield

def load(name):
    with quiet():
        try:
            return importlib.import_module(name)
        except BaseException:
            return None

def doc_of(obj):
    with quiet():
        try:
            doc = inspect.getdoc(obj)
        except Exception:
            return None
    return doc if isinstance(doc, str) else None

def own(obj, modname):
    return getattr(obj, "__module__", None) == modname

names = set()
for top in sorted(sys.stdlib_module_names):
    if skip(top):
        continue
    module = load(top)
    if module is None:
        continue
    names.add(top)
    if hasattr(module, "__path__"):
        with quiet():
            for info in pkgutil.walk_packages(module.__path__, top + ".", onerror=lambda n: None):
                if not skip(info.name):
                    names.add(info.name)

modules = []
for name in sorted(names):
    module = load(name)
    if module is None:
        continue
    docs = []
    if module.__doc__:
        docs.append(doc_of(module))
    for attr, obj in sorted(vars(module).items()):
        if attr.startswith("_"):
            continue
        with quiet():
            if inspect.isclass(obj) and own(obj, name):
                if obj.__doc__:
                    docs.append(doc_of(obj))
                for mattr, member in sorted(vars(obj).items()):
                    if mattr.startswith("_") and mattr not in ("__init__", "__call__"):
                        continue
                    target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    if not getattr(target, "__doc__", None):
                        continue
                    if (inspect.isfunction(target) and own(target, name)) or inspect.isbuiltin(target) \
                            or inspect.ismethoddescriptor(target) or isinstance(member, property):
                        docs.append(doc_of(target))
            elif (inspect.isfunction(obj) and own(obj, name)) or (inspect.isbuiltin(obj) and getattr(obj, "__module__", None) in (name, None)):
                if obj.__doc__:
                    docs.append(doc_of(obj))
    modules.append([name, [d for d in docs if d]])

from pydoc_data import topics
json.dump({"python": sys.version, "modules": modules, "topics": [topics.topics[k] for k in sorted(topics.topics)]}, sys.stdout)
'''


_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                             "\u2014": "--", "\u2026": "...", "\u00a0": " ", "\u2192": "->"})


def _clean(doc: str) -> str | None:
    text = doc.replace("\r\n", "\n").replace("\t", "    ").translate(_TYPOGRAPHY)
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    if len(text) < 24 or EOT in text:
        return None
    letters = sum(ch.isalpha() for ch in text)
    foreign = sum(not ch.isascii() for ch in text)
    if letters < 0.5 * len(text) or foreign > 0.002 * len(text):
        return None   # tables, ASCII art, byte dumps, examples in other scripts
    return text


@functools.lru_cache(maxsize=1)
def _collect_raw() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train docs, held-out docs) in a fixed order; cached per process (the subprocess takes a second or two)."""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _COLLECTOR],
        capture_output=True, text=True, encoding="utf-8", timeout=300, check=False,
        env={**os.environ, "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8", "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"Collecting the documentation corpus failed:\n{proc.stderr[-2000:]}")
    raw = json.loads(proc.stdout)
    seen: set[str] = set()
    train: list[str] = []
    heldout: list[str] = []
    for index, (_name, docs) in enumerate(raw["modules"]):
        bucket = heldout if index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else train
        for doc in docs:
            text = _clean(doc)
            if text and text not in seen:
                seen.add(text)
                bucket.append(text)
    for topic in raw["topics"]:
        text = _clean(topic)
        if text and text not in seen:
            seen.add(text)
            train.append(text)
    # Near-duplicate docstrings (a function re-documented in a sibling module) share whole paragraphs: keep
    # those out of the held-out text so it measures generalisation, not recall.
    train_paragraphs = {p for doc in train for p in doc.split("\n\n")}
    kept = []
    for doc in heldout:
        text = "\n\n".join(p for p in doc.split("\n\n") if p not in train_paragraphs)
        if len(text) >= 24:
            kept.append(text)
    return tuple(train), tuple(kept)


def _join(docs, max_chars: int | None) -> str:
    out, size = [], 0
    for doc in docs:
        if max_chars is not None and size + len(doc) > max_chars and out:
            break
        out.append(doc)
        size += len(doc) + 2
    return "\n\n".join(out) + "\n"


def collect_corpus(max_chars: int | None = None) -> tuple[str, str]:
    """(train_text, heldout_text) from the installed Python's documentation; deterministic for that Python.

    Docstrings of the standard-library modules, classes, functions and methods (deduplicated, cleaned, kept in
    sorted module order), separated by blank lines; every 10th module is held out. ``max_chars`` caps the
    training text (whole docstrings only) and the held-out text at a fifth of it.
    """
    train, heldout = _collect_raw()
    return _join(train, max_chars), _join(heldout, None if max_chars is None else max(max_chars // 5, 1))


# --------------------------------------------------------------------------------------------- helpers

def train_tokenizer(text: str, vocab_size: int = VOCAB_SIZE, model_max_length: int = MODEL_CONFIG["n_positions"]):
    """A byte-level BPE tokenizer trained on ``text``, wrapped as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_pieces(text), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT, pad_token=EOT,
        model_max_length=model_max_length, clean_up_tokenization_spaces=False,
    )


def _pieces(text: str) -> list[str]:
    """``text`` cut just before each blank line: byte-level pre-tokenization never joins across these cuts, so
    encoding the pieces gives exactly the ids of encoding the whole text (checked in the tests)."""
    paragraphs = text.split("\n\n")
    return paragraphs[:1] + ["\n\n" + p for p in paragraphs[1:]]


def _encode(tokenizer, text: str) -> list[int]:
    ids: list[int] = []
    for enc in tokenizer.backend_tokenizer.encode_batch(_pieces(text), add_special_tokens=False):
        ids.extend(enc.ids)
    return ids


def decay_steps(total: int) -> int:
    """Length of the final linear decay in a run of ``total`` steps."""
    return max(1, round(DECAY_FRACTION * total))


def _total_for_decay_start(step: int) -> int:
    """The longest run whose decay starts exactly at ``step`` (so ``max_steps`` of it replays the same schedule)."""
    fits = [t for t in range(step + 1, 3 * step + 4) if t - decay_steps(t) == step]
    return max(fits) if fits else step + decay_steps(step)


def lr_factor(step: int, total: int) -> float:
    """Warm-up-stable-decay: linear warm-up over ``WARMUP_STEPS``, constant, then a linear decay to zero over the
    last :func:`decay_steps` of ``total`` steps. A function of (step, total) only."""
    decay = decay_steps(total)
    start = total - decay
    tail = 1.0 if step < start else max(0.0, (total - step) / decay)
    return min((step + 1) / WARMUP_STEPS, tail)


def _batch_stream(n_tokens: int, block: int, batch_size: int, seed: int):
    """Endless deterministic batches of block offsets: epoch e shifts the block grid by e*block//3 and shuffles it
    with a generator seeded from (seed, e). Yields (offsets, epoch)."""
    import torch

    epoch, pending = 0, []
    while True:
        shift = (epoch * block // 3) % block
        starts = torch.arange(shift, n_tokens - block - 1, block)
        perm = torch.randperm(len(starts), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        pending.extend(starts[perm].tolist())
        while len(pending) >= batch_size:
            yield pending[:batch_size], epoch
            pending = pending[batch_size:]
        epoch += 1


def heldout_nll(model, ids: list[int], block: int, max_tokens: int = EVAL_MAX_TOKENS, batch_size: int = 16):
    """Mean negative log-likelihood over non-overlapping ``block``-token windows (the first token of each window
    is context only) and the ids of the predicted tokens, so other models can be scored on exactly those."""
    import torch

    ids = ids[: max(max_tokens, block)]
    windows = [ids[i:i + block] for i in range(0, len(ids) - 1, block)]
    windows = [w for w in windows if len(w) > 1]
    total, count, targets = 0.0, 0, []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            group = windows[i:i + batch_size]
            width = max(len(w) for w in group)
            x = torch.zeros(len(group), width, dtype=torch.long)
            mask = torch.zeros(len(group), width, dtype=torch.long)
            for r, w in enumerate(group):
                x[r, :len(w)] = torch.tensor(w)
                mask[r, :len(w)] = 1
            logits = model(input_ids=x, attention_mask=mask).logits[:, :-1].float()
            y = x[:, 1:]
            keep = mask[:, 1:].bool()
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
            total += float(nll[keep.reshape(-1)].sum())
            count += int(keep.sum())
            for w in group:
                targets.extend(w[1:])
    return total / max(count, 1), targets


def unigram_nll(train_ids: list[int], targets: list[int], vocab_size: int) -> float:
    """Mean NLL of ``targets`` under an add-one-smoothed unigram model estimated from ``train_ids``."""
    import torch

    counts = torch.bincount(torch.tensor(train_ids), minlength=vocab_size).double() + 1.0
    logp = counts.log() - counts.sum().log()
    return float(-logp[torch.tensor(targets)].mean())


# --------------------------------------------------------------------------------------------- build

def build_demo_gpt(
    out_dir: str | Path,
    *,
    seed: int = 0,
    budget_s: float | None = 240.0,
    max_steps: int | None = None,
    corpus_chars: int | None = None,
    progress: Progress | None = None,
    config: dict | None = None,
    vocab_size: int = VOCAB_SIZE,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    precision: str = "auto",
    num_threads: int | None = None,
) -> dict:
    """Train the demo GPT-2 and its tokenizer on the Python documentation; save a HF folder at ``out_dir``.

    ``budget_s`` bounds the wall time from the start of the build to the end of training (corpus and tokenizer
    included; the held-out evaluation and saving come after it, a few seconds); the run plans to end at 95%
    of it. ``max_steps`` caps the
    optimisation steps; with ``budget_s=None`` exactly ``max_steps`` steps run. ``config`` overrides
    :data:`MODEL_CONFIG` (any ``GPT2Config`` field, e.g. a tiny model for tests); ``corpus_chars`` caps the
    training text. ``precision`` is ``"fp32"``, ``"bf16"`` (bfloat16 autocast for the forward pass; weights and
    optimiser stay fp32) or ``"auto"``: bf16 when the CPU has native bf16 instructions (about 2.5x faster
    there), else fp32 (emulated bf16 is slower). ``num_threads``, if given, sets torch's intra-op threads for
    the build only.

    Returns metrics: ``heldout_perplexity`` (token level, on the held-out docstrings: non-overlapping windows of
    ``n_positions`` tokens, the first token of each window used as context only, at most
    ``EVAL_MAX_TOKENS`` tokens), ``unigram_perplexity`` (add-one-smoothed unigram model from the training
    tokens, on the same predicted tokens), ``steps``, ``planned_steps`` (the schedule's length T),
    ``decay_start``, ``stopped_by`` (``"max_steps"``; ``"budget_plan"``: reached the T chosen to fit the
    budget; ``"budget"``: time ran out first), ``build_s``, ``train_s``, ``train_tokens``, ``tokens_seen``,
    ``params`` and a greedy ``sample`` (no repeated 3-grams).
    """
    if budget_s is None and max_steps is None:
        raise ValueError("Give max_steps, budget_s, or both.")
    if precision == "auto":
        from ..env import has_native_bf16

        precision = "bf16" if has_native_bf16() else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', not {precision!r}")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    report = progress or (lambda fraction, message: None)
    cfg = {**MODEL_CONFIG, **(config or {})}
    block = int(cfg["n_positions"])

    report(0.0, "Collecting Python's documentation")
    train_text, heldout_text = collect_corpus(corpus_chars)

    report(0.04, f"Training a {vocab_size}-token byte-level BPE tokenizer on {len(train_text):,} characters")
    tokenizer = train_tokenizer(train_text, vocab_size, block)
    vocab = len(tokenizer)
    eot = tokenizer.convert_tokens_to_ids(EOT)
    train_ids = _encode(tokenizer, train_text)
    heldout_ids = _encode(tokenizer, heldout_text)
    if len(train_ids) < 2 * block + 2:
        raise ValueError(f"The training text is too short ({len(train_ids)} tokens) for {block}-token blocks.")
    data = torch.tensor(train_ids, dtype=torch.long)

    with torch_threads(num_threads), torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)
        gpt_config = GPT2Config(
            vocab_size=vocab, n_ctx=block, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True, **cfg,
        )
        model = GPT2LMHeadModel(gpt_config)
        params = sum(p.numel() for p in model.parameters())

        def autocast():
            if precision == "bf16":
                return torch.autocast("cpu", dtype=torch.bfloat16)
            return contextlib.nullcontext()

        def make_optimizer():
            decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
            other = [p for n, p in model.named_parameters() if p.dim() < 2]
            return torch.optim.AdamW(
                [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": other, "weight_decay": 0.0}],
                lr=learning_rate, betas=(0.9, 0.95), eps=1e-8,
            )

        def train_step(optimizer, starts, lr):
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = torch.stack([data[s:s + block] for s in starts])
            with autocast():
                loss = model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.item()

        # Warm-up-stable-decay. The total T is max_steps, or, under a time budget, fixed at the first step where
        # the remaining time only just fits the decay (timed on the recent steps, so it follows the machine's
        # load); the schedule then is exactly the one max_steps=T gives, so the run can be replayed.
        planned, by_budget = max_steps, False
        optimizer = make_optimizer()
        model.train()
        t_train = time.perf_counter()
        recent: list[float] = []
        steps, loss_value, epochs, shown, stopped_by = 0, float("nan"), 0, 0.10, "max_steps"
        for step, (starts, epoch) in enumerate(_batch_stream(len(train_ids), block, batch_size, seed)):
            now = time.perf_counter()
            if planned is not None and step >= planned:
                stopped_by = "budget_plan" if by_budget else "max_steps"
                break
            if budget_s is not None and now - t0 > budget_s:
                stopped_by = "budget"
                break
            if budget_s is not None and len(recent) >= 4 and (planned is None or step < planned - decay_steps(planned)):
                total = _total_for_decay_start(step)
                if now - t0 + (total - step) * sum(recent) / len(recent) >= BUDGET_SAFETY * budget_s and (planned is None or total < planned):
                    planned, by_budget = total, True
            loss_value = train_step(optimizer, starts, learning_rate * lr_factor(step, planned or 10**9))
            steps, epochs = step + 1, epoch + 1
            if steps == 1 or steps % 5 == 0:
                done = steps / planned if planned else (time.perf_counter() - t0) / budget_s
                shown = max(shown, 0.10 + 0.80 * min(1.0, done))
                of = f"/{planned}" if planned else ""
                report(shown, f"Training demo-gpt: step {steps}{of}, loss {loss_value:.3f}")
            recent = (recent + [time.perf_counter() - now])[-RATE_WINDOW:]   # whole iteration, progress included
        if planned is None:      # the budget ran out before the speed could be measured
            planned = steps
        train_s = time.perf_counter() - t_train

        report(0.91, "Scoring the held-out documentation")
        nll, targets = heldout_nll(model, heldout_ids, block)
        uni = unigram_nll(train_ids, targets, vocab)

        model.eval()
        prompt = tokenizer(SAMPLE_PROMPT, return_tensors="pt")
        with torch.inference_mode():
            generated = model.generate(**prompt, max_new_tokens=32, do_sample=False, no_repeat_ngram_size=3, pad_token_id=eot)
        sample = tokenizer.decode(generated[0], skip_special_tokens=True)

        report(0.96, "Saving the model folder")
        model.generation_config.pad_token_id = eot
        with atomic_dir(out_dir) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)

    build_s = time.perf_counter() - t0
    metrics = {
        "heldout_perplexity": math.exp(nll),
        "unigram_perplexity": math.exp(uni),
        "heldout_tokens_scored": len(targets),
        "steps": steps,
        "planned_steps": planned,
        "decay_start": planned - decay_steps(planned),
        "stopped_by": stopped_by,
        "final_train_loss": loss_value,
        "train_tokens": len(train_ids),
        "tokens_seen": steps * batch_size * block,
        "epochs_started": epochs,
        "train_chars": len(train_text),
        "heldout_chars": len(heldout_text),
        "vocab_size": vocab,
        "params": params,
        "config": {**cfg, "batch_size": batch_size, "learning_rate": learning_rate, "precision": precision},
        "seed": seed,
        "train_s": train_s,
        "build_s": build_s,
        "sample_prompt": SAMPLE_PROMPT,
        "sample": sample,
    }
    report(1.0, f"demo-gpt ready: held-out perplexity {metrics['heldout_perplexity']:.1f} "
                f"(unigram baseline {metrics['unigram_perplexity']:.1f})")
    return metrics
