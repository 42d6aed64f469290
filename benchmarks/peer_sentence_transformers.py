"""The peer, measured the way its own efficiency guide does it: sentence-transformers' ONNX export
with ONNX Runtime dynamic int8 (the ``avx512_vnni`` configuration), beside its PyTorch fp32.

Runs inside the peer's own virtualenv (transformers 4.x, optimum-onnx; see setup_peer.sh), never in
the lab's. Reads a JSON job on stdin, prints one JSON result on stdout. It times ``model.encode`` end
to end (tokenization, forward, pooling, normalisation) on exactly the texts the lab's benchmark
times, with the same warm-up / minimum-iterations / minimum-seconds protocol.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time


def timed(fn, warmup: int, min_iters: int, min_seconds: float, max_iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times, started = [], time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= max_iters or (len(times) >= min_iters and time.perf_counter() - started >= min_seconds):
            return times


def openvino_peers(job: dict, work: str) -> dict:
    """sentence-transformers' OpenVINO backend (its efficiency guide's CPU recommendation), fp32 and static int8
    through its own ``export_static_quantized_openvino_model`` (optimum-intel, NNCF), when the extra is installed.
    Its calibration data would come from the hub (glue/sst2); here ``datasets.load_dataset`` answers with the lab's
    own sample texts instead (the first 64), so nothing is downloaded."""
    try:
        import datasets
        from optimum.intel import OVQuantizationConfig
        from sentence_transformers import SentenceTransformer, export_static_quantized_openvino_model
    except ImportError as err:
        print(f"openvino peer skipped: {err}", file=sys.stderr)
        return {}
    import optimum.intel.openvino.quantization as ov_quantization

    folder = os.path.join(work, "minilm-ov")
    shutil.copytree(job["model_path"], folder)
    ov_config = {"INFERENCE_NUM_THREADS": str(job["threads"]), "PERFORMANCE_HINT": "LATENCY"}
    exported = SentenceTransformer(folder, backend="openvino", device="cpu")
    exported.save_pretrained(folder)
    texts = [t for t in job["quality_texts"] if t.strip()][:64]
    local = datasets.Dataset.from_dict({"text": texts})
    for module in (datasets, ov_quantization):
        if hasattr(module, "load_dataset"):
            module.load_dataset = lambda *a, **k: local
    # (the export quantizes the model it is given in place: the fp32 peer is loaded afresh from its own file below)
    export_static_quantized_openvino_model(exported, OVQuantizationConfig(num_samples=len(texts)), folder, dataset_name="lab-sample",
                                           dataset_config_name="local", dataset_split="train", column_name="text")
    xml = next(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs if f.endswith(".xml") and "qint8" in f)
    int8 = SentenceTransformer(folder, backend="openvino", device="cpu", model_kwargs={"file_name": xml, "ov_config": ov_config})
    fp32 = SentenceTransformer(folder, backend="openvino", device="cpu",
                               model_kwargs={"file_name": "openvino/openvino_model.xml", "ov_config": ov_config})
    return {"peer: sentence-transformers openvino fp32": fp32, "peer: sentence-transformers openvino int8 (static, NNCF)": int8}


def main() -> int:
    job = json.load(sys.stdin)
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    torch.set_num_threads(job["threads"])
    work = tempfile.mkdtemp()
    try:
        folder = os.path.join(work, "minilm")
        shutil.copytree(job["model_path"], folder)
        onnx_fp32 = SentenceTransformer(folder, backend="onnx", device="cpu")
        onnx_fp32.save_pretrained(folder)
        export_dynamic_quantized_onnx_model(onnx_fp32, "avx512_vnni", folder)
        session = {"provider": "CPUExecutionProvider", "file_name": "onnx/model_qint8_avx512_vnni.onnx"}
        variants = {
            "peer: sentence-transformers fp32 (torch)": SentenceTransformer(folder, device="cpu"),
            "peer: sentence-transformers onnx-int8 (avx512_vnni)": SentenceTransformer(folder, backend="onnx", device="cpu", model_kwargs=session),
        }
        variants.update(openvino_peers(job, work))
        p = job["protocol"]
        ref = variants["peer: sentence-transformers fp32 (torch)"].encode(job["quality_texts"], batch_size=32, normalize_embeddings=True)
        out = {}
        for name, model in variants.items():
            emb = model.encode(job["quality_texts"], batch_size=32, normalize_embeddings=True)
            latency = {}
            for bs, texts in job["cells"].items():
                times = timed(lambda: model.encode(texts, batch_size=int(bs)), p["warmup"], p["min_iters"], p["min_seconds"], p["max_iters"])
                latency[bs] = float(np.median(times) * 1000)
            out[name] = {"cosine_fidelity": float((emb * ref).sum(1).mean()), "p50_ms": latency}
        print(json.dumps(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
