"""The oneDNN kernels a PyTorch variant's matrix multiplications ran with: one call under oneDNN's verbose mode
(``torch.backends.mkldnn.verbose``), its ``exec`` lines counted per implementation and weight type. PyTorch runs fp32
Linear layers through MKL and dynamic int8 through FBGEMM, neither of which reports its kernels: then no oneDNN
matmul ran, and the line says so."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections import Counter

MATMUL_KINDS = ("matmul", "inner_product")
SOURCE = "oneDNN verbose"
NONE = "no oneDNN matmul ran (PyTorch used MKL or FBGEMM, which do not report their kernels)"


@contextlib.contextmanager
def captured_stdout():
    """The process's C-level stdout (where oneDNN prints) sent to a temporary file; yields a list that holds its text after."""
    sys.stdout.flush()
    saved = os.dup(1)
    text: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            yield text
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode("utf-8", "replace"))


def parse(verbose: str) -> Counter:
    """{implementation_weighttype: count} of the matmul and inner-product ``exec`` lines, e.g.
    'onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx10_1_512_amx,undef,src:bf16::blocked:ab::f0 wei:bf16...'."""
    counts: Counter = Counter()
    for line in verbose.splitlines():
        fields = line.split(",")
        if len(fields) < 9 or fields[0] != "onednn_verbose":
            continue
        at = fields.index("exec") if "exec" in fields else -1
        if at < 0 or len(fields) < at + 6 or fields[at + 2] not in MATMUL_KINDS:
            continue
        impl, memory = fields[at + 3], fields[at + 5]
        wei = next((m.split(":")[1] for m in memory.split() if m.startswith("wei:") and len(m.split(":")) > 1), "")
        counts[f"{impl}_{wei}" if wei else impl] += 1
    return counts


def kernel_reader(run):
    """``Variant.kernels`` for a torch variant: one call of ``run`` under oneDNN's verbose mode."""

    def read(input_ids, attention_mask) -> dict:
        import torch

        with captured_stdout() as out:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                run(input_ids, attention_mask)
        return {"source": SOURCE, "kernels": dict(parse(out[0] if out else "")), "none": NONE}

    return read
