"""OpenVINO, NNCF, OpenVINO Tokenizers and OpenVINO GenAI imported without their usage telemetry (shared by the
OpenVINO and OpenVINO GenAI families).

``import openvino`` starts OpenVINO's telemetry (its model converter's), which, with no consent file, writes an id
and counters under ``~/intel`` and would send usage events where a network is. A lab that measures a team's models
writes outside its store nothing and sends nothing, so before the first import the telemetry singleton is made
once, declined (the way the library declines in CI), and every later user of it gets that inert instance. NNCF's
own telemetry is off with ``NNCF_CI``, its documented switch."""

from __future__ import annotations

import contextlib
import os

_SILENCED = False


def _silence() -> None:
    global _SILENCED
    if _SILENCED:
        return
    _SILENCED = True
    os.environ.setdefault("NNCF_CI", "1")
    try:
        import openvino_telemetry
    except ImportError:   # openvino then uses its own stub, which does nothing
        return
    saved = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        with contextlib.suppress(Exception):
            openvino_telemetry.Telemetry(app_name="OpenVINO", app_version="0", tid="none", backend="ga4",   # the name OVC asks for: no re-init
                                         enable_opt_in_dialog=False, disable_in_ci=True)
    finally:
        if saved is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = saved


def openvino():
    """The ``openvino`` module, its telemetry declined."""
    _silence()
    import openvino as ov

    return ov


def nncf():
    """The ``nncf`` module, its telemetry off."""
    _silence()
    import nncf as module

    return module


def openvino_tokenizers():
    """The ``openvino_tokenizers`` module (it imports openvino), after the telemetry is declined."""
    _silence()
    import openvino_tokenizers as module

    return module


def openvino_genai():
    """The ``openvino_genai`` module (it imports openvino), after the telemetry is declined."""
    _silence()
    import openvino_genai as module

    return module
