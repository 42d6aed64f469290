"""The scenario registry (core/scenarios/): a scenario is one module plus one line in ``REGISTRY``, and the engine,
the worker, the report reader, the CLI and the pages ask it instead of branching on its name."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core import scenarios
from core.engine.evaluate import EvalConfig, validate
from core.errors import QlabError
from core.reporting.results import SCENARIO_NAMES
from core.scenarios import get_scenario, scenario_of
from core.tasks import all_tasks, get_task


def test_every_scenario_is_declared_once_with_its_words_and_measurement():
    assert scenarios.SCENARIOS == ("latency", "generate") and scenarios.DEFAULT == "latency"
    for scenario in scenarios.REGISTRY.values():
        assert scenario.title and scenario.summary and scenario.speed.axis and callable(scenario.measure) and callable(scenario.plan)
        assert scenario.sweep in ("seq_lengths", "prompt_lengths")
    assert get_scenario(None).name == get_scenario("  ").name == "latency"
    assert set(scenarios.REGISTRY) <= set(SCENARIO_NAMES)   # a report of every scenario passes the report schema


def test_an_unknown_scenario_is_one_line_naming_the_choices():
    with pytest.raises(QlabError) as err:
        get_scenario("throughput")
    assert str(err.value) == "Unknown scenario 'throughput'; choose latency or generate."


def test_which_tasks_each_scenario_measures():
    runs = {t.name: [s.name for s in scenarios.REGISTRY.values() if not s.unavailable_reason(t)] for t in all_tasks()}
    assert runs == {"embedding": ["latency"], "classification": ["latency"], "causal-lm": ["latency", "generate"]}
    assert "no text to generate" in get_scenario("generate").unavailable_reason(get_task("embedding"))


def test_a_report_says_its_scenario_or_its_cells_do():
    generation_only = {"results": [{"variant": "fp32", "generation": [{"batch_size": 1}], "latency": []}]}
    assert scenario_of(generation_only).name == "generate"   # a report from before the setting
    assert scenario_of({"settings": {"scenario": "latency"}, "results": generation_only["results"]}).name == "latency"
    assert scenario_of({"settings": {"scenario": "made-up"}, "results": []}).name == "latency"
    assert scenario_of({}).speed.short == "ms" and get_scenario("generate").speed.short == "ms/token"


def test_a_new_scenario_plugs_in_at_one_place(tiny_gpt2_dir, monkeypatch):
    """One more entry in REGISTRY: validation asks its plan and its task rule, with no edit in the engine."""
    asked = []

    def plan(config, dataset, *, ints, max_seq, check_positions):
        asked.append(config.seq_lengths)
        return {"seq_lengths": [max(config.seq_lengths)]}, check_positions([max(config.seq_lengths)])

    longest = replace(get_scenario("latency"), name="longest-only", plan=plan, needs_generating_task=True)
    monkeypatch.setitem(scenarios.REGISTRY, "longest-only", longest)
    config = EvalConfig(task="causal-lm", model=str(tiny_gpt2_dir), variants=["fp32"], seq_lengths=[8, 16], scenario="longest-only")
    checked = validate(config)
    assert checked.scenario == "longest-only" and checked.seq_lengths == [16] and asked == [[8, 16]]
    with pytest.raises(QlabError, match=r"^Sequence length 100 is longer than model .* accepts \(64 positions\)"):
        validate(replace(config, seq_lengths=[8, 100]))   # the plan's own check, against the model's positions

