"""What a hardware target is, read on that target: CPU, instruction sets, cores, RAM, GPU, library versions.

``probe()`` runs where the measurement will run (this machine, or inside a Ray task on a cluster node), so the
flags are the node's own and never assumed. ``target_row`` turns a probe into the row ``python -m core hardware``
lists and the dashboard shows.
"""

from __future__ import annotations

import os
import platform
import socket

from ..env import read_cpuinfo

# the instruction sets that decide int8 / bf16 speed, in the order badges show them
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "neon", "asimd", "asimddot")
LOCAL_ID = "local"


def _gpu() -> tuple[str | None, int | None]:
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return props.name, int(props.total_memory)
    except Exception:  # noqa: BLE001 - whatever torch raises here means no usable GPU
        pass
    return None, None


def _quantized_engines() -> list[str]:
    try:
        import torch

        return sorted(e for e in torch.backends.quantized.supported_engines if e != "none")
    except Exception:  # noqa: BLE001 - a torch that cannot list its engines offers none
        return []


def probe() -> dict:
    """This machine, as a hardware target sees it."""
    import psutil

    from ..recipes.registry import library_versions, runtime_probes  # each family's libraries and runtime: OpenVINO's device list, ...

    model, flags = read_cpuinfo()
    gpu, gpu_memory = _gpu()
    return {
        "hostname": socket.gethostname(),
        "cpu": model,
        "arch": platform.machine(),
        "cores": os.cpu_count() or 1,
        "physical_cores": psutil.cpu_count(logical=False),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "ram_bytes": int(psutil.virtual_memory().total),
        "gpu": gpu,
        "gpu_memory_bytes": gpu_memory,
        "versions": library_versions(),
        "quantized_engines": _quantized_engines(),
        "runtimes": runtime_probes(),
        "python": platform.python_version(),
    }


def target_row(target_id: str, name: str, node_id: str | None, info: dict, alive: bool = True) -> dict:
    """The listing shape: {"id", "name", "node_id", "cpu", "arch", "cores", "isa", "gpu", "alive"} plus the full probe."""
    return {"id": target_id, "name": name, "node_id": node_id, "cpu": info.get("cpu"), "arch": info.get("arch"), "cores": info.get("cores"),
            "isa": list(info.get("isa") or []), "gpu": info.get("gpu"), "alive": alive, "probe": info}


def local_target() -> dict:
    info = probe()
    return target_row(LOCAL_ID, f"{info['hostname']} (this machine)", None, info)


def speedup_hint(isa: list[str]) -> str:
    """What the flags mean for int8 in one phrase (for badges and notes)."""
    if "amx_int8" in isa:
        return "AMX int8 tiles"
    if "avx512_vnni" in isa or "avx_vnni" in isa:
        return "VNNI int8 dot products"
    if "asimddot" in isa:
        return "ARM int8 dot products"
    if "avx2" in isa:
        return "AVX2 only: int8 gains little"
    return "no vector int8 support known"


def describe_machine(info: dict | None = None) -> str:
    """'AMD EPYC (x86_64), 2 cores, instruction sets: avx2' : the line every quoted figure carries."""
    info = info or probe()
    return f"{info['cpu']} ({info['arch']}), {info['cores']} cores, instruction sets: {', '.join(info['isa']) or 'none of note'}"
