"""Accuracy-aware search: per-layer sensitivity and a mixed-precision ONNX Runtime int8 variant.

Sensitivity: quantize one weight node (MatMul / fused Attention) at a time, everything else fp32,
and measure how far the output moves from fp32 on the calibration texts. Mixed precision: quantize
everything, then give the most sensitive nodes back their fp32 weights, one at a time, until the
output fidelity meets the target (or the ``max_fp32`` cap is reached). The artifact records the
sensitivity table, which the Weights page shows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..base import BuildContext, Param, Recipe, write_json
from ..decoders import graph_feeds
from ..onnx_common import GRAPH, cpu_only, fidelity, fp32_graph, load_onnx, make_session, quiet, weight_type_for_cpu

QUANTIZABLE = ("MatMul", "Attention")


def quantizable_nodes(graph: Path) -> list[str]:
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type in QUANTIZABLE and any(i in inits for i in n.input[1:2])]


class _Probe:
    """Quantizes the fp32 graph with some nodes excluded and scores the result against fp32."""

    def __init__(self, ctx: BuildContext, fp32_graph: Path, work: Path, weight_type: str):
        from ...inputs import calibration

        self.ctx, self.fp32, self.work, self.weight_type = ctx, fp32_graph, work, weight_type
        texts = calibration.texts_for(ctx)[:32]
        enc = ctx.tokenizer()(texts, padding=True, truncation=True, max_length=ctx.max_length, return_tensors="np")
        session = make_session(fp32_graph, threads=ctx.threads)
        self.feeds = graph_feeds(session, enc["input_ids"], enc["attention_mask"])
        self.ref = self._run(session)

    def _run(self, session) -> np.ndarray:
        return session.run(["output"], self.feeds)[0]

    def quantize(self, out: Path, exclude: list[str] | None = None, only: list[str] | None = None) -> Path:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with quiet():
            quantize_dynamic(
                str(self.fp32), str(out), op_types_to_quantize=list(QUANTIZABLE), per_channel=True,
                weight_type=QuantType.QInt8 if self.weight_type == "int8" else QuantType.QUInt8,
                nodes_to_exclude=exclude or None, nodes_to_quantize=only or None,
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        return out

    def score(self, graph: Path) -> float:
        out = self._run(make_session(graph, threads=self.ctx.threads))
        return fidelity(self.ctx.task, out, self.ref, self.feeds["attention_mask"])


def sensitivity(probe: _Probe, nodes: list[str], say=lambda f, m: None) -> list[dict]:
    """Fidelity loss when only that node is int8, most sensitive first."""
    rows = []
    for i, node in enumerate(nodes):
        say(0.55 + 0.3 * i / max(len(nodes), 1), f"sensitivity {i + 1}/{len(nodes)}: {node}")
        score = probe.score(probe.quantize(probe.work / "one.onnx", only=[node]))
        rows.append({"node": node, "fidelity": score, "loss": 1.0 - score})
    return sorted(rows, key=lambda r: r["loss"], reverse=True)


def build_onnx_int8_mixed(ctx: BuildContext, params: dict, out: Path) -> dict:
    from ...inputs import calibration

    target, cap = float(params["target"]), int(float(params["max_fp32"]))
    work = out / "work"
    work.mkdir()
    with fp32_graph(ctx, work / "fp32") as fp32:
        notes, origin = list(fp32.notes), fp32.origin
        probe = _Probe(ctx, fp32.path, work, weight_type_for_cpu("auto"))
        nodes = quantizable_nodes(fp32.path)
        table = sensitivity(probe, nodes, ctx.say)
        kept: list[str] = []
        score = probe.score(probe.quantize(work / "all.onnx"))
        trail = [{"fp32_nodes": 0, "fidelity": score}]
        for row in table:
            if score >= target or len(kept) >= cap:
                break
            kept.append(row["node"])
            ctx.say(0.87, f"keeping {len(kept)} node(s) in fp32: fidelity {score:.4f}")
            score = probe.score(probe.quantize(work / "mixed.onnx", exclude=kept))
            trail.append({"fp32_nodes": len(kept), "fidelity": score})
        probe.quantize(out / GRAPH, exclude=kept)
    shutil.rmtree(work)
    met = "meets" if score >= target else "does not reach"
    notes.append(f"Mixed precision: {len(kept)} of {len(nodes)} weight nodes kept fp32 (most sensitive first); "
                 f"calibration fidelity ({calibration.source_words(ctx)}) {score:.4f} {met} the target {target}.")
    write_json(out / "onnx.json", {"notes": notes})
    write_json(out / "sensitivity.json", {"target": target, "nodes": table, "kept_fp32": kept, "trail": trail, "final_fidelity": score})
    return {"kept_fp32": kept, "final_fidelity": score, "fp32_graph": origin}


def read_sensitivity(artifact_dir: Path) -> dict | None:
    """The search's record in a built onnx-int8-mixed artifact: nodes (most sensitive first), kept_fp32, trail, target."""
    path = Path(artifact_dir) / "sensitivity.json"
    return json.loads(path.read_text()) if path.is_file() else None


RECIPES = [
    Recipe(
        "onnx-int8-mixed",
        "ONNX Runtime dynamic int8 with the most sensitive layers kept fp32, chosen by per-layer sensitivity to meet a fidelity target",
        build_onnx_int8_mixed, load_onnx,
        params=(
            Param("target", "0.995", help="output fidelity (cosine to fp32) to reach on the calibration texts", number=(0.0, 1.0),
                  suggestions=("0.99", "0.995", "0.998", "0.999", "0.9995", "0.9999", "0.99999")),
            Param("max_fp32", "4", help="most weight nodes left in fp32", number=(0, 1000), suggestions=("1", "2", "4", "8", "16")),
        ),
        check=cpu_only, calibrated=True,   # the sensitivity search scores layers on the calibration texts
    ),
]
