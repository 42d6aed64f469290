"""The three tasks the lab knows, and how a model's config says which one it does."""

from __future__ import annotations

EMBEDDING = "embedding"
CLASSIFICATION = "classification"
CAUSAL_LM = "causal-lm"
TASKS = (EMBEDDING, CLASSIFICATION, CAUSAL_LM)


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
    from .errors import QlabError

    if task not in TASKS:
        raise QlabError(f"Unknown task '{task}': choose one of {', '.join(TASKS)}.")
    return task
