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
