"""Which kernels ran (issue 28): read from the runtime itself, never from the CPU flags. The parsers run on real
lines of each runtime's output; the readers on real compiled models (tiny random models: code paths, not speed), and
what they must name depends on what this CPU has (read from its flags, and said in the skip reason where it lacks it).
"""

from __future__ import annotations

import numpy as np
import pytest

from core import env
from core.engine.variants import get_variant
from core.inputs.sources import resolve as resolve_source
from core.measure import kernels
from core.recipes.onednn_kernels import NONE, parse
from core.reporting.compare import kernel_words

# real lines of oneDNN 3.x's verbose output (torch 2.13, an AMX Xeon): a header, a bf16 matmul, a reorder
ONEDNN = "\n".join([
    "onednn_verbose,v1,info,oneDNN v3.9.1 (commit 0000)",
    "onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,memory_descriptors,attributes,"
    "auxiliary,problem_desc,exec_time",
    "onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx10_1_512_amx,undef,src:bf16::blocked:ab::f0 wei:bf16::blocked:ba::f0 "
    "dst:bf16::blocked:ab::f0,attr-scratchpad:user,,1024x384:384x384,0.1",
    "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:ab::f0 dst:bf16::blocked:ab::f0,,,384x384,0.01",
    "onednn_verbose,v1,primitive,exec,cpu,inner_product,brgemm:avx512_core_amx,forward_inference,src:u8::blocked:ab::f0 "
    "wei:s8:p:blocked:AB16b64a4b::f0,,,mb32ic384oc384,0.02",
])


def test_implementation_names_give_isa_and_type():
    assert kernels.isa_of("brgemm_avx512_amx_I8") == ("avx512_amx", "int8")
    assert kernels.isa_of("brgemm_avx512_amx_bf16") == ("avx512_amx", "bf16")
    assert kernels.isa_of("jit_avx2_f32") == ("avx2", "f32")
    assert kernels.isa_of("brg_matmul:avx10_1_512_amx_bf16") == ("avx10_1_512_amx", "bf16")
    assert kernels.isa_of("gemm_any") == ("any", None)


def test_onednn_exec_lines_are_counted_per_implementation_and_weight_type():
    counts = parse(ONEDNN)
    assert counts == {"brg_matmul:avx10_1_512_amx_bf16": 1, "brgemm:avx512_core_amx_s8": 1}
    assert parse("nothing of oneDNN's here\n") == {}


def test_the_line_says_counts_per_isa_the_runtimes_names_and_why_there_are_none():
    line = kernels.summary({"source": "OpenVINO runtime graph", "kernels": {"brgemm_avx512_amx_I8": 35, "jit_avx512_f32": 1}})
    assert line == "matmuls: 35 of 36 on avx512_amx (int8); 1 on avx512 (f32) [OpenVINO runtime graph: brgemm_avx512_amx_I8 x35, jit_avx512_f32 x1]"
    assert kernel_words(line) == "35 of 36 on avx512_amx (int8); 1 on avx512 (f32)"
    assert kernels.summary(None) == "matmul kernels: not reported by the runtime"
    assert kernels.summary({"source": "oneDNN verbose", "kernels": {}, "none": NONE}) == f"matmul kernels: {NONE} (oneDNN verbose)"
    assert kernel_words(None) is None


class _Broken:
    def kernels(self, ids, mask):
        raise RuntimeError("the runtime graph is gone")


def test_a_reader_that_fails_says_so_and_fails_nothing():
    line = kernels.read(_Broken(), np.ones((1, 4), np.int64), np.ones((1, 4), np.int64))
    assert line.startswith("matmul kernels: could not be read (RuntimeError: the runtime graph is gone")


@pytest.fixture(scope="module")
def tiny(tiny_embedder_dir):
    source = resolve_source(str(tiny_embedder_dir))
    ids = (np.arange(32, dtype=np.int64).reshape(2, 16) % 90) + 5
    return source, ids, np.ones_like(ids)


def test_openvino_int8_names_the_kernels_of_its_runtime_graph(tiny):
    pytest.importorskip("nncf")
    source, ids, mask = tiny
    variant = get_variant(source, "openvino-int8", calibration_texts=["a calibration text", "and another one here"] * 4).variant
    line = kernels.read(variant, ids, mask)
    assert line.startswith("matmuls: ") and "[OpenVINO runtime graph: " in line, line
    if "amx_int8" in env.cpu_info()["flags"]:   # the runtime says AMX where the CPU has it (read, not inferred)
        assert "amx (int8)" in kernel_words(line), line


def test_torch_bf16_reports_onednn_and_fp32_says_no_onednn_matmul_ran(tiny):
    source, ids, mask = tiny
    fp32 = kernels.read(get_variant(source, "fp32").variant, ids, mask)
    assert fp32 == f"matmul kernels: {NONE} (oneDNN verbose)", fp32
    bf16 = kernels.read(get_variant(source, "bf16").variant, ids, mask)
    if not env.has_native_bf16():
        pytest.skip(f"torch bf16 may not use oneDNN's bf16 matmul without native bf16; this CPU is {env.isa_words()} (line: {bf16})")
    assert bf16.startswith("matmuls: ") and "(bf16)" in bf16 and "[oneDNN verbose: " in bf16, bf16
    if env.has_amx():
        assert "amx" in kernel_words(bf16), bf16


def test_onnx_runtime_is_said_not_to_report(tiny):
    source, ids, mask = tiny
    assert kernels.read(get_variant(source, "onnx-fp32").variant, ids, mask) == "matmul kernels: not reported by the runtime"
