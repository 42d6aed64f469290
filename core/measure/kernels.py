"""Which kernels a variant's matrix multiplications ran with, as its runtime reports them (never guessed from the CPU
flags): one line for the notes, the CSV and Compare, e.g. "matmuls: 35 of 35 on avx512_amx (int8) [OpenVINO runtime
graph: brgemm_avx512_amx_I8 x35]".

A variant that can say carries ``Variant.kernels``: called once after its timing, on inputs of a timed shape, it returns
``{"source": ..., "kernels": {implementation: count}}`` (an empty count: no matmul of that runtime's reporting kind
ran) or None. The runtimes' readers live in their families (OpenVINO: the compiled model's runtime graph; PyTorch:
oneDNN's verbose lines); ONNX Runtime and llama.cpp do not say which kernels run, and the line says so.
"""

from __future__ import annotations

import re
from collections import Counter

NOT_REPORTED = "not reported by the runtime"
# an implementation's ISA and data type: brgemm_avx512_amx_I8 (OpenVINO), brg_matmul:avx10_1_512_amx (oneDNN)
_DTYPE = {"i8": "int8", "u8": "int8", "bf16": "bf16", "f16": "f16", "f32": "f32", "fp32": "f32", "i4": "int4", "u4": "int4"}
_IMPL_PREFIX = re.compile(r"^(brgemm|brg_matmul|brg|jit|gemm|ref|acl|gemv|mlas|x64|dnnl)[_:]*", re.I)


def isa_of(implementation: str) -> tuple[str, str | None]:
    """(ISA, data type or None) of a kernel implementation's name, e.g. 'brgemm_avx512_amx_I8' -> ('avx512_amx', 'int8')
    and 'brg_matmul:avx10_1_512_amx' -> ('avx10_1_512_amx', None); unknown parts are kept as they are."""
    name = implementation.strip()
    parts = _IMPL_PREFIX.sub("", name).replace(":", "_").split("_")
    dtype = _DTYPE.get(parts[-1].lower()) if parts else None
    if dtype:
        parts = parts[:-1]
    return ("_".join(p for p in parts if p) or name), dtype


def summary(report: dict | None, dtype: str | None = None) -> str:
    """The one line: matmuls per ISA (with data type where the implementation names it, else ``dtype``), the runtime's
    own names in brackets; or why there is none."""
    if not report:
        return f"matmul kernels: {NOT_REPORTED}"
    counts = Counter(report.get("kernels") or {})
    source = report.get("source", "the runtime")
    if not counts:
        return f"matmul kernels: {report.get('none', 'none reported')} ({source})"
    total = sum(counts.values())
    by_isa: Counter = Counter()
    for impl, n in counts.items():
        isa, kind = isa_of(impl)
        by_isa[f"{isa} ({kind or dtype})" if (kind or dtype) else isa] += n
    parts = [f"{n} of {total} on {isa}" if i == 0 else f"{n} on {isa}" for i, (isa, n) in enumerate(by_isa.most_common())]
    raw = ", ".join(f"{impl} x{n}" for impl, n in counts.most_common(4)) + (", ..." if len(counts) > 4 else "")
    return f"matmuls: {'; '.join(parts)} [{source}: {raw}]"


def read(variant, input_ids, attention_mask) -> str:
    """The variant's kernel line, read once on these inputs (untimed); a reader that fails says so instead of failing
    the measurement."""
    reader = getattr(variant, "kernels", None)
    if reader is None:
        return f"matmul kernels: {NOT_REPORTED}"
    try:
        return summary(reader(input_ids, attention_mask))
    except Exception as err:  # noqa: BLE001 - the kernels are information; the figures stand without them
        return f"matmul kernels: could not be read ({type(err).__name__}: {str(err)[:120]})"
