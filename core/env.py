"""What this machine is: CPU, instruction sets, cores, accelerators (library versions: the families declare them,
core.recipes.registry.library_versions)."""

from __future__ import annotations

import functools
import os
import platform

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")   # the thread pools' settings
INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile", "fma", "f16c", "neon", "asimd")


@functools.lru_cache(maxsize=1)
def read_cpuinfo() -> tuple[str, frozenset[str]]:
    """The CPU's model name and every instruction-set flag it lists, from /proc/cpuinfo: the one reader of it.

    The model is the first ``model name`` (x86), ``Model`` or ``Hardware`` (ARM) line, else what ``platform`` says.
    Every ARMv8 core has NEON (listed as ``asimd``), so ``neon`` is added there, and ``asimddot`` with ``asimddp``.
    """
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    if "asimd" in flags or platform.machine().lower() in ("aarch64", "arm64"):
        flags.add("neon")
        if "asimddp" in flags:
            flags.add("asimddot")
    return model or platform.processor() or platform.machine() or "unknown", frozenset(flags)


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict:
    """CPU model name and the instruction-set flags that matter for int8/bf16 kernels (from :func:`read_cpuinfo`)."""
    model, flags = read_cpuinfo()
    return {
        "model": model,
        "arch": platform.machine(),
        "flags": sorted(f for f in INTERESTING_FLAGS if f in flags),
        "logical_cores": os.cpu_count() or 1,
    }


def has_vnni() -> bool:
    flags = cpu_info()["flags"]
    return "avx512_vnni" in flags or "avx_vnni" in flags


def has_amx() -> bool:
    return "amx_bf16" in cpu_info()["flags"]


def has_native_bf16() -> bool:
    flags = cpu_info()["flags"]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def isa_words() -> str:
    """What the CPU has, in words for notes: 'AMD EPYC 7B13 (avx2, f16c, fma)'."""
    info = cpu_info()
    return f"{info['model']} ({', '.join(info['flags']) or 'none of ' + ', '.join(INTERESTING_FLAGS[:6])})"


def is_x86() -> bool:
    return cpu_info()["arch"].lower() in ("x86_64", "amd64", "i686", "x86")


def default_quant_engine() -> str:
    """The PyTorch quantized engine that suits this CPU: x86 (fbgemm/onednn) on Intel/AMD, qnnpack on ARM."""
    return "x86" if is_x86() else "qnnpack"


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def devices() -> list[str]:
    return ["cpu", "cuda"] if cuda_available() else ["cpu"]


def environment(threads: int | None = None, device: str = "cpu", versions: dict | None = None) -> dict:
    """The block every report starts with, so a timing is never read without its machine. ``versions``: the run's
    libraries, as its families declare them (core.recipes.registry.library_versions)."""
    import torch

    info = cpu_info()
    env = {
        "cpu": info["model"],
        "arch": info["arch"],
        "instruction_sets": info["flags"],
        "cores": info["logical_cores"],
        "threads": threads or torch.get_num_threads(),
        "device": device,
        "quantized_engine": default_quant_engine(),
        "versions": dict(versions or {}),
        "python": platform.python_version(),
    }
    if device == "cuda" and cuda_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env
