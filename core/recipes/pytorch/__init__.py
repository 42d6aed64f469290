"""The PyTorch family: fp32 (the reference), bf16, fp16, dynamic int8 (torch.ao), torchao int8/int4 and TorchScript."""

from __future__ import annotations

from ..family import Exporter, Family, NoteCause
from .export import TORCH, dynamic_int8_snippet, pretrained_snippet, torchao_snippet, torchscript_snippet, write_dynamic_int8, write_pretrained, write_torchao
from .recipes import RECIPES

_PRETRAINED = Exporter("pretrained", write_pretrained, pretrained_snippet, TORCH)

# slow-variant causes, each evidenced by the note this family's build or load wrote (recipes.py), in the order they are told
CAUSES = (
    NoteCause("qnnpack-on-x86", "the qnnpack engine (ARM kernels) runs on this x86 CPU; use engine=x86", "qnnpack"),
    NoteCause("no-native-bf16", "this CPU has no avx512_bf16/AMX, so bf16 matmuls run in ATen's fallback bf16 GEMM (converted to fp32 in software), "
              "not oneDNN", "no native bf16"),
    NoteCause("bf16-no-amx", "no AMX on this CPU, so bf16 matmuls gain little", "but no AMX"),
    NoteCause("int8-no-vnni", "this CPU has no VNNI, so int8 matmuls gain little over fp32", "no VNNI"),
    # torchao-int4's note calls it weight-only: it is told the weight-only cause, as before the families
    NoteCause("weight-only-dequantized", "weight-only int8 is dequantized to fp32 at load, so it computes exactly like fp32 (the gap is noise)", "Weight-only"),
    NoteCause("torchao-int-mm-fallback", "no VNNI/AMX on this CPU, so torchao's torch._int_mm runs ATen's fallback int8 GEMM (no oneDNN kernel)",
              "neither VNNI"),
    # the torchao recipe's own note, not the torch.ao deprecation
    NoteCause("torchao-eager-activations", "torchao's CPU int8 path quantizes activations with eager ops on every Linear call", "targets GPUs first"),
)

FAMILY = Family(
    name="pytorch",
    recipes=tuple(RECIPES),
    exporters={
        "fp32": _PRETRAINED, "bf16": _PRETRAINED, "fp16": _PRETRAINED,
        "dynamic-int8": Exporter("dynamic-int8", write_dynamic_int8, dynamic_int8_snippet, TORCH),
        "torchao-int8": Exporter("torchao", write_torchao, torchao_snippet, (*TORCH, "torchao")),
        "torchscript": Exporter("torchscript", write_pretrained, torchscript_snippet, TORCH),
    },
    not_exported={"torchao-int4": "torchao 4-bit weights"},
    colors={
        "fp32": "#3b3b3b",          # the reference's dark grey (core.charts.REFERENCE_COLOR)
        "bf16": "#8c564b",
        "fp16": "#e377c2",
        "dynamic-int8": "#1f77b4",
        "torchao-int8": "#17becf",
        "torchscript": "#9467bd",
        "torchao-int4": "#0f8a99",  # 4-bit siblings: a darker or lighter shade of their int8 recipe's colour
    },
    causes=CAUSES,
    # the reference and the source of every variant: every run depends on these
    versions=("torch", "transformers", "tokenizers", "safetensors", "sentence-transformers", "torchao"),
)
