"""The task registry: the three tasks the lab knows, each declared once (``embedding.py``, ``classification.py``,
``causal_lm.py``) with its data, metrics, budget, primary metric, schema entries and chart axis.

Code asks the task (``get_task(name).budget.words(0.99)``) instead of branching on its name. A new task is one
module with its declaration and one line in ``REGISTRY``. Low level: imports nothing from the lab but ``errors``.
"""

from __future__ import annotations

from ..errors import QlabError
from . import causal_lm, classification, embedding
from .base import Axis, Budget, Column, Task
from .dataset import Dataset

REGISTRY: dict[str, Task] = {t.name: t for t in (
    embedding.TASK,
    classification.TASK,
    causal_lm.TASK,
)}

EMBEDDING = embedding.TASK.name
CLASSIFICATION = classification.TASK.name
CAUSAL_LM = causal_lm.TASK.name
TASKS = tuple(REGISTRY)


def get_task(name: str) -> Task:
    """The task called ``name``; a one-line QlabError for an unknown one."""
    task = REGISTRY.get(name)
    if task is None:
        raise QlabError(f"Unknown task '{name}': choose one of {', '.join(TASKS)}.")
    return task


def find_task(name: str | None, default: str | None = None) -> Task | None:
    """The task called ``name``, else the ``default`` task (None when that is None too): for reports read from disk."""
    return REGISTRY.get(name) or (REGISTRY.get(default) if default else None)


def all_tasks() -> tuple[Task, ...]:
    return tuple(REGISTRY.values())


def default_budgets() -> dict[str, float]:
    """Every task's default budget key -> its default (the recommendation's defaults)."""
    return {t.budget.key: t.budget.default for t in REGISTRY.values()}


def budget_keys() -> dict[str, tuple[Task, Budget]]:
    """Every budget key any task accepts -> (the task, the measure)."""
    return {b.key: (t, b) for t in REGISTRY.values() for b in t.all_budgets}


def infer_task(architectures: list[str] | None, is_sentence_transformer: bool = False) -> str | None:
    """Guess the task from a Hugging Face config's ``architectures`` list.

    Returns None when the config does not say; the caller then asks the user.
    """
    if is_sentence_transformer:
        return EMBEDDING
    for arch in architectures or []:
        if arch.endswith("ForSequenceClassification"):
            return CLASSIFICATION
        if arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
            return CAUSAL_LM
        if arch.endswith("Model"):
            return EMBEDDING
    return None


def check_task(task: str) -> str:
    return get_task(task).name


__all__ = ["Axis", "Budget", "Column", "Dataset", "Task", "REGISTRY", "EMBEDDING", "CLASSIFICATION", "CAUSAL_LM", "TASKS",
           "get_task", "find_task", "all_tasks", "default_budgets", "budget_keys", "infer_task", "check_task"]
