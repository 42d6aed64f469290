"""Quantization Lab core: model sources, recipes, store, evaluation. Importable without Streamlit."""

import logging as _logging

# Libraries that announce optional kernels they could not load (torchao's CUDA-only extensions on a
# CPU machine) or deprecations of their own internals: keep that out of the user's terminal.
for _name in ("torchao", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)
