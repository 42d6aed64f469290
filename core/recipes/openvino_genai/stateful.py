"""A transformers causal LM as the stateful OpenVINO model OpenVINO GenAI runs, without optimum-intel.

What ``openvino_genai.LLMPipeline(folder, "CPU")`` reads from a folder (openvino.genai's ``utils::read_model``,
``get_kv_axes_pos`` and ``StatefulLLMPipeline``): ``openvino_model.xml`` / ``.bin`` whose inputs are ``input_ids``,
``attention_mask``, ``position_ids`` and ``beam_idx`` and whose output is ``logits``, with the KV cache as model state
(a ReadValue / Assign pair per key and value, each ReadValue initialised to ``[batch, kv_heads, 0, head_dim]`` zeros: the
zero-length axis is how it finds the sequence axis); ``openvino_tokenizer.xml`` / ``openvino_detokenizer.xml``; and
``generation_config.json`` (``config.json`` beside it, as optimum writes it). This module writes the model the way
optimum-intel's ``stateful.py`` does:

1. The model, with PyTorch's scaled-dot-product attention, traced by OpenVINO's PyTorch frontend as a decoder with past
   key/values (``past.N.key`` / ``past.N.value`` in, ``present.N.*`` out); the converted graph keeps
   ScaledDotProductAttention ops, which the CPU plugin fuses with the state into its own KV-cache attention.
2. ``beam_idx``: a Gather on every past along the batch axis (GenAI reorders the cache rows with it; identity for greedy).
3. ``apply_make_stateful_transformation``: each past/present pair becomes a state, so the cache lives in the plugin.
4. Each state's initial value: zeros of ``[batch of input_ids, kv_heads, 0, head_dim]``.
"""

from __future__ import annotations

import numpy as np

from ...errors import RecipeError
from ..export_graph import decoder_example, decoder_with_past, kv_shape
from ..onnx_common import quiet
from ..openvino_quiet import openvino
from ..torch_common import example_inputs

INPUTS = ("input_ids", "attention_mask", "position_ids", "beam_idx")   # the stateful model's inputs, as GenAI feeds them
LOGITS = "logits"
PAST, PRESENT = "past.", "present."
ATTENTION = "sdpa"   # traced as aten::scaled_dot_product_attention -> ScaledDotProductAttention, which the CPU plugin fuses with the cache


def plain_cache_or_refuse(model, name: str) -> None:
    """The model's transformers cache must be plain full-attention layers (DynamicLayer) to be traced with a past."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    kinds = {type(layer).__name__ for layer in DynamicCache(config=model.config).layers}
    if kinds != {DynamicLayer.__name__}:
        raise RecipeError(f"openvino-genai: '{name}' has {', '.join(sorted(kinds))} cache layers (sliding-window or hybrid attention); "
                          "the lab's stateful export covers full-attention causal LMs only (its cache is plain DynamicLayer per layer).")


def convert(model, tokenizer, name: str):
    """The causal LM as an OpenVINO model with past key/values as inputs and presents as outputs, named as above."""
    import torch

    plain_cache_or_refuse(model, name)
    before = model.config._attn_implementation
    try:
        model.set_attn_implementation(ATTENTION)
    except (ValueError, ImportError) as err:
        raise RecipeError(f"openvino-genai: '{name}' has no scaled-dot-product attention in transformers ({err}); "
                          "OpenVINO's stateful KV cache is fused around that op.") from None
    try:
        ids, _ = example_inputs(tokenizer)
        args, pasts = decoder_example(model, ids)   # a non-empty past, so the cache's concatenation is traced
        with torch.inference_mode(), quiet():
            ov_model = openvino().convert_model(decoder_with_past(model, fill="assign"), example_input=args)
    finally:
        model.set_attn_implementation(before)
    names_in = ["input_ids", "attention_mask", "position_ids", *pasts]
    names_out = [LOGITS] + [PRESENT + n[len(PAST):] for n in pasts]
    if len(ov_model.inputs) != len(names_in) or len(ov_model.outputs) != len(names_out):
        raise RuntimeError(f"the converted decoder has {len(ov_model.inputs)} inputs and {len(ov_model.outputs)} outputs, "
                           f"expected {len(names_in)} and {len(names_out)}")
    for port, port_name in [*zip(ov_model.inputs, names_in), *zip(ov_model.outputs, names_out)]:
        port.get_tensor().set_names({port_name})
    return ov_model, pasts


def make_stateful(ov_model, pasts: list[str], config) -> None:
    """In place: ``beam_idx`` added, the pasts made states (the KV cache in the plugin), their initial values zeros."""
    ov = openvino()
    from openvino import opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    _, kv_heads, head_dim = kv_shape(config)
    for name in pasts:   # static heads and head size: the state's initial shape, where GenAI reads the cache's axes
        ov_model.input(name).get_node().set_partial_shape(ov.PartialShape([-1, kv_heads, -1, head_dim]))
    ov_model.validate_nodes_and_infer_types()
    batch = ov_model.input("input_ids").get_partial_shape()[0]
    beam_idx = ops.parameter(ov.PartialShape([batch]), ov.Type.i32, name="beam_idx")
    beam_idx.output(0).get_tensor().set_names({"beam_idx"})
    ov_model.add_parameters([beam_idx])
    for name in pasts:
        port = ov_model.input(name)
        consumers = port.get_target_inputs()
        reordered = ops.gather(port, beam_idx, ops.constant(0))
        for consumer in consumers:
            consumer.replace_source_output(reordered.output(0))
    ov_model.validate_nodes_and_infer_types()
    apply_make_stateful_transformation(ov_model, {name: PRESENT + name[len(PAST):] for name in pasts})
    rows = ops.gather(ops.shape_of(ov_model.input("input_ids"), output_type="i64"), ops.constant([0]), ops.constant(0))
    for op in ov_model.get_ops():
        if op.get_type_name() == "ReadValue":
            dims = [d.min_length for d in op.get_output_partial_shape(0)]   # [?, kv_heads, ?, head_dim] -> [0, kv_heads, 0, head_dim]
            parts = [rows if i == 0 else ops.constant(np.array([d], dtype=np.int64)) for i, d in enumerate(dims)]
            op.set_arguments([ops.broadcast(ops.constant(0.0, dtype=op.get_output_element_type(0)), ops.concat(parts, axis=0))])
    ov_model.validate_nodes_and_infer_types()
    names = [p.get_any_name() for p in ov_model.inputs]
    if tuple(names) != INPUTS or [p.get_any_name() for p in ov_model.outputs] != [LOGITS]:
        raise RuntimeError(f"the stateful model has inputs {names} and outputs {[p.get_any_name() for p in ov_model.outputs]}")


def state_count(ov_model) -> int:
    return sum(1 for op in ov_model.get_ops() if op.get_type_name() == "ReadValue")
