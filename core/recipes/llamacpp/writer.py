"""A Llama-family Hugging Face folder (fp32 safetensors) written as a GGUF by the ``gguf`` package, quantized by its
numpy quantizers (Q8_0, Q5_0, Q5_1, Q4_0, Q4_1; F16 and F32 as they are). No compiler and no llama.cpp tool.

What llama.cpp's own converter does for a ``LlamaForCausalLM`` is done here too: tensor names from ``gguf``'s
``TensorNameMap``, the query and key projections permuted to llama.cpp's rotary layout, and the hyper-parameters
and tokenizer as metadata. The tokenizer comes from a GGUF the model shipped with, copied as it is, or else from
``tokenizer.json`` (byte-level BPE). Norms stay F32; a tensor whose rows are not a whole number of 32-value blocks
stays F16 (said in the notes); the token embedding (also the output layer when the two are tied) is Q8_0 at 4 and
5 bits, as llama.cpp's 4-bit files of small models usually keep it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import RecipeError

TYPES = ("f32", "f16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")   # what the gguf package can write (no K-quants: see recipes.py)
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
BPE_PRE = {   # the tokenizer's pre-tokenizer -> llama.cpp's name for it
    ("ByteLevel",): "gpt-2",
    ("Digits", "ByteLevel"): "smollm",
}
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5


def _qtype(name: str):
    import gguf

    return gguf.GGMLQuantizationType[name.upper()]


def _ftype(name: str) -> int:
    import gguf

    return int(gguf.LlamaFileType[f"MOSTLY_{name.upper()}" if name != "f32" else "ALL_F32"])


def read_config(folder: Path) -> dict:
    config = json.loads((Path(folder) / "config.json").read_text())
    arch = (config.get("architectures") or [config.get("model_type", "?")])[0]
    if arch not in ARCHITECTURES:
        raise RecipeError(f"gguf: the lab writes GGUFs for Llama-family models ({', '.join(ARCHITECTURES)}); this model is {arch}.")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise RecipeError(f"gguf: rope scaling '{rope.get('rope_type', rope.get('type'))}' is not written by the lab's GGUF writer yet.")
    if config.get("sliding_window"):
        raise RecipeError("gguf: a model with sliding-window attention is not written by the lab's GGUF writer yet.")
    return config


def _tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise RecipeError(f"gguf: no safetensors weights in {folder}")
    out: dict[str, np.ndarray] = {}
    for path in files:
        out.update(load_file(str(path)))
    return out


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's rotary halves -> llama.cpp's interleaved pairs (what convert_hf_to_gguf.py does to q/k)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensor_type(gguf_name: str, data: np.ndarray, wanted: str) -> str:
    if data.ndim < 2 or gguf_name.endswith("_norm.weight") or wanted in ("f32", "f16"):
        return "f32" if data.ndim < 2 or gguf_name.endswith("_norm.weight") else wanted
    if data.shape[-1] % 32:
        return "f16"
    if gguf_name.startswith("token_embd") and wanted != "q8_0":
        return "q8_0"
    return wanted


def _copy_tokenizer(writer, shipped: Path) -> None:
    import gguf

    reader = gguf.GGUFReader(str(shipped))
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub)


def _bpe_pre(tok: dict) -> str:
    pre = tok.get("pre_tokenizer") or {}
    kinds = tuple(p.get("type") for p in pre.get("pretokenizers", [])) if pre.get("type") == "Sequence" else (pre.get("type"),)
    return BPE_PRE.get(kinds, "default")


def _write_tokenizer(writer, folder: Path, n_vocab: int) -> list[str]:
    import gguf

    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise RecipeError("gguf: the model has no tokenizer.json to write into the GGUF (the lab writes byte-level BPE tokenizers).")
    tok = json.loads(path.read_text(encoding="utf-8"))
    model = tok.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise RecipeError("gguf: the lab writes byte-level BPE tokenizers (GPT-2 style) into GGUFs; this one is "
                          f"{model.get('type', '?')}{' with byte fallback' if model.get('byte_fallback') else ''}.")
    vocab = dict(model.get("vocab") or {})
    added = {t["content"]: t for t in tok.get("added_tokens", [])}
    for content, t in added.items():
        vocab[content] = t["id"]
    by_id = {i: s for s, i in vocab.items()}
    tokens, types = [], []
    for i in range(n_vocab):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(TOKEN_UNUSED)
        else:
            tokens.append(text)
            types.append(TOKEN_NORMAL if text not in added else (TOKEN_CONTROL if added[text].get("special") else TOKEN_USER_DEFINED))
    pre = _bpe_pre(tok)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=n_vocab)
    special.add_special_token.setdefault("bos", _adds_bos(folder))   # what the model's own tokenizer does, said outright
    special.add_special_token.setdefault("eos", False)
    special.add_to_gguf(writer, quiet=True)
    if pre == "default":
        return ["The tokenizer's pre-tokenizer has no llama.cpp name here, so the GGUF says 'default': llama.cpp may split text "
                "differently from the model's own tokenizer (the lab feeds token ids, so its measurements are unaffected)."]
    return []


def _adds_bos(folder: Path) -> bool:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    ids = tok("a")["input_ids"]
    return tok.bos_token_id is not None and len(ids) > 0 and ids[0] == tok.bos_token_id


def write_gguf(folder: Path, out: Path, type_name: str, *, tokenizer_from: Path | None = None, name: str = "") -> dict:
    """Write the HF folder ``folder`` as a GGUF at ``out`` with its linear weights in ``type_name``.

    ``tokenizer_from``: a GGUF whose tokenizer metadata is copied as it is (the model's own shipped file).
    Returns ``{"types": {ggml type: tensor count}, "notes": [...]}``."""
    import gguf

    if type_name not in TYPES:
        raise RecipeError(f"gguf: type={type_name} cannot be written by the gguf package; choose one of {', '.join(TYPES)}.")
    folder = Path(folder)
    config = read_config(folder)
    tensors = _tensors(folder)
    n_layer, heads = int(config["num_hidden_layers"]), int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    n_vocab = int(config["vocab_size"])
    rope = config.get("rope_parameters") or {}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)

    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(name or folder.name)
    writer.add_context_length(int(config.get("max_position_embeddings") or 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(float(config.get("rope_theta") or rope.get("rope_theta") or 10000.0))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps") or 1e-6))
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(_ftype(type_name))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    notes = _copy_tokenizer(writer, tokenizer_from) if tokenizer_from else _write_tokenizer(writer, folder, n_vocab)
    notes = list(notes or [])

    counts: dict[str, int] = {}
    kept_f16 = []
    tied = "model.embed_tokens.weight" in tensors and bool(config.get("tie_word_embeddings", True))
    for hf_name, data in tensors.items():
        if hf_name == "lm_head.weight" and tied and np.array_equal(data, tensors["model.embed_tokens.weight"]):
            continue   # llama.cpp uses the token embedding as the output layer when the GGUF has none
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise RecipeError(f"gguf: the writer does not know where tensor '{hf_name}' goes in a llama GGUF.")
        data = np.asarray(data, dtype=np.float32)
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, kv_heads)
        kind = _tensor_type(gguf_name, data, type_name)
        if kind == "f16" and type_name not in ("f16",):
            kept_f16.append(gguf_name)
        writer.add_tensor(gguf_name, gguf.quants.quantize(data, _qtype(kind)), raw_dtype=_qtype(kind))
        counts[kind.upper()] = counts.get(kind.upper(), 0) + 1
    if kept_f16:
        notes.append(f"{len(kept_f16)} tensor(s) kept in F16: their rows are not whole blocks of 32 ({', '.join(kept_f16[:3])}).")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"types": counts, "notes": notes}
