"""Shared torch plumbing for recipes: one-output wrapper, Conv1D->Linear, byte counts, runners."""

from __future__ import annotations

import numpy as np

from ..tasks import get_task
from .base import Variant


def primary_output(task: str, outputs):
    return getattr(outputs, get_task(task).output_name)


def make_wrapper(model, task: str, mask_transform=None):
    """A module with forward(input_ids, attention_mask) -> the task's one output tensor (for tracing/export).

    ``mask_transform`` turns the 0/1 mask into what the model gets instead (e.g. an additive 4D mask for export).
    """
    import torch

    class PrimaryOutput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            mask = mask_transform(attention_mask) if mask_transform else attention_mask
            extra = {} if get_task(task).pooled else {"use_cache": False}   # logits models: no KV cache in a one-pass forward
            return primary_output(task, self.model(input_ids=input_ids, attention_mask=mask, **extra))

    return PrimaryOutput().eval()


def example_inputs(tokenizer, texts=None, max_length: int = 32):
    """Two texts of different length, so the batch has padding and the mask path is traced/exported."""
    texts = texts or ["Quantization maps floats to fewer levels.", "Short one."]
    enc = tokenizer(list(texts[:2]), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def conv1d_to_linear(model) -> int:
    """Replace GPT-2 style Conv1D layers (weight stored [in, out]) by equivalent nn.Linear. Returns how many."""
    import torch
    from transformers.pytorch_utils import Conv1D

    count = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                in_f, out_f = child.weight.shape
                linear = torch.nn.Linear(in_f, out_f, bias=child.bias is not None)
                linear.weight.data = child.weight.data.t().contiguous()
                if child.bias is not None:
                    linear.bias.data = child.bias.data.clone()
                setattr(parent, child_name, linear)
                count += 1
    return count


def tied_output_names(model) -> set[str]:
    """Names of Linear modules whose weight is shared with an input embedding (e.g. GPT-2's lm_head)."""
    import torch

    emb_ptrs = {m.weight.data_ptr() for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m.weight.data_ptr() in emb_ptrs}


def quantizable_linears(model) -> list[str]:
    """Linear layers to quantize: all of them except output heads tied to the input embedding."""
    import torch

    tied = tied_output_names(model)
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n not in tied]


def module_bytes(model) -> int:
    """Bytes held by parameters, buffers and packed quantized weights."""
    import torch

    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    for m in model.modules():
        packed = getattr(m, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            w, b = packed._weight_bias()
            total += w.numel() * w.element_size() + (b.numel() * b.element_size() if b is not None else 0)
            if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                total += w.q_per_channel_scales().numel() * 12  # fp64 scales + int64 zero points (as torch keeps them)
    return total


def torch_variant(name, task, module, *, device="cpu", notes=None, forward_module=None, before=None, no_cache: str = "") -> Variant:
    """Wrap a torch module as a Variant: numpy in, float32 numpy out, no autograd.

    A causal LM also gets a KV-cache decoder for generation (``before`` runs before each of its calls), unless
    ``no_cache`` says why it cannot have one."""
    import torch

    from .decoders import TorchCacheDecoder

    fwd = forward_module or make_wrapper(module, task)

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            ids = torch.as_tensor(input_ids, dtype=torch.long, device=device)
            mask = torch.as_tensor(attention_mask, dtype=torch.long, device=device)
            return fwd(ids, mask).float().cpu().numpy()

    sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
    decoder = (lambda: TorchCacheDecoder(module, device, before)) if get_task(task).generates and not no_cache else None
    from .onednn_kernels import kernel_reader

    return Variant(name=name, task=task, run=run, param_bytes=module_bytes(module), notes=list(notes or []), device=device, module=module, sync=sync,
                   decoder=decoder, no_cache_reason=no_cache, kernels=kernel_reader(run) if device == "cpu" else None)


def save_state(path, tensors: dict) -> None:
    """safetensors save that drops aliases of already-saved storage (tied weights) and copies views."""
    from safetensors.torch import save_file

    seen, clean = set(), {}
    for key, t in tensors.items():
        ptr = (t.data_ptr(), t.shape, t.dtype)
        if ptr in seen:
            continue
        seen.add(ptr)
        clean[key] = t.detach().contiguous().clone() if not t.is_contiguous() else t.detach().contiguous()
    save_file(clean, str(path))
