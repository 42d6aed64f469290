"""Running an OpenVINO IR in the lab: compiling it for the CPU plugin, and a session that looks like ONNX Runtime's.

The IR is the lab's own ONNX graph converted by OpenVINO, so its inputs and outputs keep the graph's names
(``input_ids``, ``attention_mask``, ``output``; for causal LMs ``position_ids``, ``past.N.key/value`` and
``present.N.key/value``). :class:`OvSession` answers ``get_inputs``/``get_outputs``/``run`` the way an ONNX Runtime
session does, so the lab's feeds (``decoders.graph_feeds``) and KV-cache decoder (``decoders.OnnxCacheDecoder``)
drive an OpenVINO compiled model unchanged.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...tasks import get_task
from ..base import BuildContext, Variant, read_json
from ..decoders import OnnxCacheDecoder, graph_feeds, has_past, logits_name
from ..openvino_quiet import openvino
from .kernels import kernel_reader
from .precision import precision_notes, refuse_unoffered

XML, BIN = "model.xml", "model.bin"   # the IR: the graph, and its weights
INFO = "openvino.json"                # the lab's notes on the build
DEVICE = "CPU"
# synchronous calls, one at a time, in both scenarios (latency and generate): the latency hint runs one stream on every
# thread; the throughput hint would split the threads into streams that only parallel requests fill
PERFORMANCE_HINT = "LATENCY"


@dataclass(frozen=True)
class Port:
    """An input or output as ONNX Runtime describes it: its name, and its shape with ints for static axes."""

    name: str
    shape: tuple


def ports(nodes) -> list[Port]:
    """``model.inputs`` / ``model.outputs`` of an ov.Model or a compiled model, as :class:`Port` rows."""
    out = []
    for node in nodes:
        dims = tuple(d.get_length() if d.is_static else "?" for d in node.get_partial_shape())
        out.append(Port(node.get_any_name(), dims))
    return out


class Signature:
    """The inputs and outputs of a model, the way ``decoders.graph_feeds`` reads a session's."""

    def __init__(self, model):
        self._inputs, self._outputs = ports(model.inputs), ports(model.outputs)

    def get_inputs(self) -> list[Port]:
        return self._inputs

    def get_outputs(self) -> list[Port]:
        return self._outputs


class OvSession(Signature):
    """A compiled OpenVINO model with ONNX Runtime's ``run(output_names, feeds) -> [arrays]``."""

    def __init__(self, compiled):
        super().__init__(compiled)
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def run(self, names: list[str], feeds: dict) -> list[np.ndarray]:
        result = self.request.infer(feeds)   # copies of the outputs: the request reuses its buffers on the next call
        return [np.asarray(result[name]) for name in names]


def openvino_missing() -> str | None:
    if importlib.util.find_spec("openvino") is None:
        return "openvino is not installed here (pip install -r requirements.txt)."
    return None


def cpu_only(device: str) -> str | None:
    return openvino_missing() or ("the lab runs OpenVINO on its CPU plugin; choose device cpu." if device != "cpu" else None)


def compile_ir(art: Path, threads: int | None = None, precision: str | None = None):
    """The stored IR compiled for the CPU plugin with the lab's threads and the latency hint.

    ``precision`` pins the plugin's inference precision (``INFERENCE_PRECISION_HINT``: f32, bf16 or f16); None leaves
    OpenVINO's default, which is bf16 for the float parts on CPUs with AVX-512 (native on avx512_bf16 / AMX)."""
    ov = openvino()

    config = {"PERFORMANCE_HINT": PERFORMANCE_HINT}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return ov.Core().compile_model(str(Path(art) / XML), DEVICE, config)


def compiled_precision(compiled) -> str:
    """The inference precision the plugin compiled with, read back from the compiled model: 'f32', 'bf16' or 'f16'."""
    return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()


def load_openvino(ctx: BuildContext, params: dict, art: Path, precision: str | None = None, *, recipe: str = "openvino",
                  default: str | None = None, fixed: bool = False) -> Variant:
    """The stored IR compiled in ``precision`` (refused in one line where the plugin does not offer it), as a variant
    whose notes say the precision read back from the compiled model and whether it was the lab's choice (``default``:
    the recipe's own precision; ``fixed``: the recipe has no other)."""
    refuse_unoffered(f"{recipe}:precision={precision}", precision)
    compiled = compile_ir(art, ctx.threads, precision)
    session = OvSession(compiled)
    notes = list(read_json(art / INFO).get("notes", []))
    words, extra = precision_notes(recipe, precision, default, compiled_precision(compiled), fixed=fixed)
    notes.append(f"OpenVINO CPU plugin: {words}, {compiled.get_property('INFERENCE_NUM_THREADS')} threads, {PERFORMANCE_HINT.lower()} hint.")
    notes += extra
    output = logits_name(session)

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([output], graph_feeds(session, input_ids, attention_mask))[0], dtype=np.float32)

    size = sum((art / name).stat().st_size for name in (XML, BIN))
    decoder = (lambda: OnnxCacheDecoder(OvSession(compiled))) if has_past(session) else None
    no_cache = "" if decoder or not get_task(ctx.task).generates else "this OpenVINO model has no past key/values inputs, so it carries no KV cache"
    return Variant(name="", task=ctx.task, run=run, param_bytes=size, notes=notes, device="cpu", module=compiled, decoder=decoder,
                   no_cache_reason=no_cache, kernels=kernel_reader(compiled, run))
