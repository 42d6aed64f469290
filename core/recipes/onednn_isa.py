"""A what-if for the CPUs a team deploys on: the ``isa`` parameter of the oneDNN-based families (OpenVINO, PyTorch)
caps the instruction set of that variant's worker, so a new Xeon shows what AMX buys over the VNNI-only machines
still in a fleet.

oneDNN reads ``ONEDNN_MAX_CPU_ISA`` once, when it first dispatches, so the cap is set in the worker's environment
before any library loads (``Param.env``, applied by core.recipes.registry.worker_env; a pooled worker started without
it never serves such a job). PyTorch's fp32 Linear layers run through MKL, which has its own switch
(``MKL_ENABLE_INSTRUCTIONS``), set to the nearest level; FBGEMM (dynamic int8) has none and keeps what it finds.
It is the same machine with fewer instructions: not the other CPU's clocks, caches or memory, and every note says so.
Values this CPU does not have are refused in one line that lists the ones it has.
"""

from __future__ import annotations

from .. import env
from .base import Param

DEFAULT = "all"
# oneDNN's ONEDNN_MAX_CPU_ISA values (lower-cased), oldest first, each with every CPU flag it needs
_AVX512 = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq")
LEVELS: dict[str, tuple[str, ...]] = {
    "avx2": ("avx2", "fma"),
    "avx2_vnni": ("avx2", "fma", "avx_vnni"),
    "avx512_core": _AVX512,
    "avx512_core_vnni": _AVX512 + ("avx512_vnni",),
    "avx512_core_bf16": _AVX512 + ("avx512_vnni", "avx512_bf16"),
    "avx512_core_amx": _AVX512 + ("avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"),
}
MKL_LEVEL = {"avx2": "AVX2", "avx2_vnni": "AVX2", "avx512_core": "AVX512", "avx512_core_vnni": "AVX512_E1",
             "avx512_core_bf16": "AVX512_E3", "avx512_core_amx": "AVX512_E4"}   # MKL_ENABLE_INSTRUCTIONS' nearest level
ENV_VAR = "ONEDNN_MAX_CPU_ISA"


def available(flags: frozenset[str] | set[str] | None = None) -> list[str]:
    """The caps this CPU can take (every flag of the level present), oldest first, then ``all``."""
    flags = env.read_cpuinfo()[1] if flags is None else flags
    return [name for name, need in LEVELS.items() if all(f in flags for f in need)] + [DEFAULT]


def refuse(value: str | None, flags: frozenset[str] | set[str] | None = None) -> str | None:
    """Why ``isa=value`` cannot run here (a level this CPU lacks), in one line listing the ones it has; None where it can."""
    if value in (None, DEFAULT):
        return None
    flags = env.read_cpuinfo()[1] if flags is None else flags
    have = available(flags)
    if value in have:
        return None
    lacks = [f for f in LEVELS.get(value, ()) if f not in flags]
    return (f"isa={value} needs CPU flags this CPU lacks ({', '.join(lacks)}); on this CPU choose one of {', '.join(have)}.")


def worker_env(value: str) -> dict[str, str | None]:
    """The worker's environment for ``isa=value`` (nothing for ``all``)."""
    if value == DEFAULT:
        return {}
    return {ENV_VAR: value.upper(), "MKL_ENABLE_INSTRUCTIONS": MKL_LEVEL[value]}


def note(value: str | None, torch: bool = False) -> str | None:
    """What a capped variant is, in its notes (None for ``all``); a process started without the cap (the lab's workers
    set it; a direct call does not) is said to run uncapped."""
    import os

    if value in (None, DEFAULT):
        return None
    if os.environ.get(ENV_VAR) != value.upper():
        return (f"isa={value} was asked for, but this process started without {ENV_VAR}={value.upper()} (the lab's measuring "
                "workers set it before any library loads), so nothing is capped here.")
    words = (f"isa={value}: oneDNN capped at {value.upper()} ({ENV_VAR}) in this worker"
             + (f", MKL at {MKL_LEVEL[value]}; FBGEMM (dynamic int8) has no such switch and keeps what it finds" if torch else "")
             + ". It is this machine with fewer instructions, not the other CPU's clocks, caches or memory.")
    return words


def isa_param(torch: bool = False) -> Param:
    """The ``isa`` parameter of a oneDNN-based recipe (``torch``: PyTorch's, whose notes also speak of MKL and FBGEMM)."""
    return Param("isa", DEFAULT, tuple(LEVELS) + (DEFAULT,),
                 "cap the instruction set of this variant's worker (oneDNN's ONEDNN_MAX_CPU_ISA): what the variant does on an older CPU "
                 "of the fleet, on this machine; only the levels this CPU has", at_load=True, env=worker_env, refuse=refuse, offered=available,
                 note=(lambda value: note(value, torch=True)) if torch else note)
