"""The scenario registry: the ways the lab measures speed, each declared once (``latency.py``, ``generate.py``) with
its measurement, its checks of a config, its report settings and its words.

Code asks the scenario (``get_scenario(name).measure(...)``) instead of branching on its name. A new scenario is one
module with its declaration and one line in ``REGISTRY``.
"""

from __future__ import annotations

from ..errors import QlabError
from . import generate, latency
from .base import Scenario, SpeedWords

REGISTRY: dict[str, Scenario] = {s.name: s for s in (
    latency.SCENARIO,
    generate.SCENARIO,
)}

DEFAULT = latency.SCENARIO.name
SCENARIOS = tuple(REGISTRY)


def get_scenario(name: str | None) -> Scenario:
    """The scenario called ``name`` (the default when empty); a one-line QlabError for an unknown one."""
    scenario = REGISTRY.get((name or "").strip() or DEFAULT)
    if scenario is None:
        raise QlabError(f"Unknown scenario '{name}'; choose {' or '.join(REGISTRY)}.")
    return scenario


def scenario_of(report: dict) -> Scenario:
    """The scenario a report was measured in: its settings say, else (reports from before the setting) a run whose
    every result has generation cells and no latency cells was a generation run."""
    named = REGISTRY.get((report.get("settings") or {}).get("scenario") or "")
    if named is not None:
        return named
    results = [r for r in report.get("results") or [] if not r.get("error")]
    if results and all(r.get("generation") and not r.get("latency") for r in results):
        return generate.SCENARIO
    return REGISTRY[DEFAULT]


__all__ = ["DEFAULT", "REGISTRY", "SCENARIOS", "Scenario", "SpeedWords", "get_scenario", "scenario_of"]
