"""The evaluation data a task reads (``core.inputs.data`` checks files and builds it; each task's ``read_table`` /
``read_text`` fills it in). Low level: imports only ``core.errors``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DataError


@dataclass
class Dataset:
    name: str
    task: str
    texts: list[str]                                   # the texts the models see (pairs: all sentence1 then all sentence2)
    labels: list[str] | None = None                    # classification gold labels, one per text
    pairs: list[tuple[str, str, float]] | None = None  # embedding pairs with gold similarity scores
    raw_text: str | None = None                        # causal-lm: the whole text perplexity is computed over
    columns: list[str] = field(default_factory=list)
    rows: int = 0

    def to_dict(self) -> dict:
        return {"name": self.name, "task": self.task, "texts": self.texts, "labels": self.labels,
                "pairs": [list(p) for p in self.pairs] if self.pairs is not None else None,
                "raw_text": self.raw_text, "columns": self.columns, "rows": self.rows}

    @classmethod
    def from_dict(cls, d: dict) -> "Dataset":
        pairs = [(str(a), str(b), float(s)) for a, b, s in d["pairs"]] if d.get("pairs") is not None else None
        return cls(name=d["name"], task=d["task"], texts=list(d["texts"]), labels=d.get("labels"), pairs=pairs,
                   raw_text=d.get("raw_text"), columns=list(d.get("columns") or []), rows=int(d.get("rows", 0)))

    def summary(self) -> dict:
        return {"name": self.name, "rows": self.rows, "texts": len(self.texts), "columns": self.columns}


def need_columns(columns: list[str], needed: tuple[str, ...], name: str, task: str, hint: str) -> None:
    """A DataError naming the missing columns of ``name`` unless it has all of ``needed``."""
    missing = [c for c in needed if c not in columns]
    if missing:
        have = ", ".join(columns) if columns else "none"
        raise DataError(f"'{name}' has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''} needed for {task} (it has: {have}); {hint}.")


def text_rows(rows: list[dict], name: str) -> list[str]:
    """The non-empty ``text`` cells of ``rows``, stripped; a DataError when there are none."""
    texts = [(row.get("text") or "").strip() for row in rows]
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"'{name}' has no rows with text.")
    return texts
