"""What OpenVINO reports about this machine: its version, the devices it can run on, and what its CPU plugin can do."""

from __future__ import annotations

from ..openvino_quiet import openvino


def openvino_probe() -> dict:
    """{"version", "devices", "cpu", "capabilities"}: ``Core().available_devices``, and the CPU plugin's
    ``FULL_DEVICE_NAME`` and ``OPTIMIZATION_CAPABILITIES`` (e.g. FP32, BF16, INT8); {"installed": False} without openvino."""
    try:
        ov = openvino()
    except ImportError:
        return {"installed": False}
    core = ov.Core()
    out = {"version": ov.get_version(), "devices": list(core.available_devices)}
    if "CPU" in out["devices"]:
        out["cpu"] = str(core.get_property("CPU", "FULL_DEVICE_NAME"))
        out["capabilities"] = [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    return out
