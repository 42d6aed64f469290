"""What llama.cpp (the xllamacpp wheel) reports about this machine: its version and its own system-info line."""

from __future__ import annotations


def llamacpp_probe() -> dict:
    """{"version", "system_info"}: the CPU features llama.cpp was built with and found ('AVX2 = 1 | ...');
    {"installed": False} without the wheel."""
    from .binding import BindingError, system_info, version

    try:
        return {"version": version(), "system_info": system_info()}
    except (ImportError, OSError, BindingError) as err:
        return {"installed": False, "reason": str(err).splitlines()[0][:200]}
