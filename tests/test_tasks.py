"""The task registry (core/tasks): every task declares what the rest of the lab asks of it, and the registry stays a
low-level module."""

import subprocess
import sys

import pytest

from core import tasks
from core.errors import QlabError
from core.tasks import REGISTRY, TASKS, get_task


def test_registry_holds_the_three_tasks_under_their_names():
    assert TASKS == ("embedding", "classification", "causal-lm")
    assert (tasks.EMBEDDING, tasks.CLASSIFICATION, tasks.CAUSAL_LM) == TASKS
    assert all(REGISTRY[name].name == name for name in TASKS)


@pytest.mark.parametrize("name", TASKS)
def test_each_task_declares_its_primary_metric_schema_range_and_budget(name):
    task = get_task(name)
    assert task.primary in task.metrics                     # the schema knows the primary metric
    assert task.axis.title and task.primary_label
    lo, hi = task.budget.schema_range
    assert lo <= task.budget.default <= hi and task.budget.min_value <= task.budget.default <= task.budget.max_value
    assert task.budget.flag in task.budget.help             # the dashboard's help names the CLI flag
    assert task.budget.dest == task.budget.key              # --min-cosine <-> min_cosine
    assert (tasks.find_task(name) is task) and task.accepts_model_of(name)


def test_budget_words_in_the_dashboard_and_in_the_recommendation():
    budget = get_task("embedding").budget
    assert budget.words(0.99) == "cosine fidelity ≥ 0.99"
    assert budget.ascii_words(0.99) == "cosine fidelity >= 0.99"
    assert get_task("classification").budget.ascii_words(1.0) == "accuracy drop <= 1 pt"
    assert get_task("causal-lm").budget.words(2.0) == "perplexity increase ≤ 2%"
    assert tasks.default_budgets() == {"min_cosine": 0.99, "max_accuracy_drop": 1.0, "max_ppl_increase": 2.0}


def test_quality_deltas_and_budget_checks_per_task():
    emb, cls, lm = (get_task(n) for n in TASKS)
    assert emb.quality_delta({"cosine_fidelity": 0.995}, {}) == (pytest.approx(-0.005), "cosine")
    assert cls.quality_delta({"accuracy": 0.88}, {"accuracy": 0.9}) == (pytest.approx(-2.0), "pt")
    assert lm.quality_delta({"perplexity": 11.0}, {"perplexity": 10.0}) == (pytest.approx(10.0), "%")
    assert cls.quality_delta({"accuracy": 0.88}, {}) == (None, "")
    assert emb.check_budget({"cosine_fidelity": 0.98}, {}, 0.99)[0] is False
    assert lm.check_budget({"perplexity": 10.1}, {"perplexity": 10.0}, 2.0)[0] is True
    assert cls.derived_quality({"accuracy": 0.88}, {"accuracy": 0.9}) == {"accuracy_drop_pt": pytest.approx(2.0)}
    assert emb.derived_quality({"cosine_fidelity": 1.0}, {}) == {}


def test_an_unknown_task_is_one_line():
    with pytest.raises(QlabError, match="Unknown task 'translation': choose one of embedding, classification, causal-lm"):
        get_task("translation")
    assert tasks.find_task("translation") is None
    assert tasks.find_task(None, default="embedding") is REGISTRY["embedding"]


def test_the_registry_imports_nothing_above_it():
    code = "import sys, core.tasks; print(sorted(m for m in sys.modules if m.startswith('core')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert set(eval(loaded)) <= {"core", "core.errors", "core.tasks", "core.tasks.base", "core.tasks.dataset",
                                 "core.tasks.embedding", "core.tasks.classification", "core.tasks.causal_lm"}
