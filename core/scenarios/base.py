"""What a scenario is: how a variant's speed is measured, and everything the lab says and asks about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# measure(job, variant, tokenizer, channel) -> the result fields it fills (latency, dataset_throughput, generation, ...)
Measure = Callable[[dict, object, object, object], dict]


@dataclass(frozen=True)
class SpeedWords:
    """How charts and tables name a scenario's speed figure."""

    axis: str      # the speed axis title
    short: str     # its unit, after a number
    what: str      # the quantity, in a sentence
    length: str    # the swept length, in a sentence
    lengths: str   # the swept length's axis title
    suffix: str    # after a length in a point's words ("16 tokens", "32-token prompts")

    def as_dict(self) -> dict:
        return {"axis": self.axis, "short": self.short, "what": self.what, "length": self.length, "lengths": self.lengths}


@dataclass(frozen=True)
class Scenario:
    """One way of measuring speed (latency: a forward pass per cell; generate: greedy decoding), declared once.

    ``plan`` normalises the scenario's own settings of an evaluation config (the engine passes its checks in, so a
    scenario never imports the engine), ``measure`` runs in the worker, the rest is words and defaults."""

    name: str
    title: str                       # the dashboard's radio label
    summary: str                     # the report's settings.speed_summary
    speed: SpeedWords
    sweep: str                       # the config field swept besides batch size: "seq_lengths" or "prompt_lengths"
    sweep_words: str                 # its name in a sentence ("sequence lengths")
    default_batch_sizes: str         # the CLI's default --batch-sizes
    measure: Measure
    plan: Callable[..., tuple[dict, int | None]]   # (config, dataset, ints=, max_seq=, check_positions=) -> (config fields, positions)
    setup_words: Callable[[dict], str]  # what a page config sweeps, for the Run page's summary
    report_settings: Callable[[object], dict] = field(default=lambda cfg: {})   # extra report settings from the checked config
    needs_generating_task: bool = False   # only causal LMs can run it

    def unavailable_reason(self, task) -> str | None:
        """Why ``task`` (a core.tasks.Task) cannot be measured this way, or None."""
        if self.needs_generating_task and not task.generates:
            return f"the {self.name} scenario is for causal-lm models; a {task.name} model has no text to generate (use --scenario latency)"
        return None
