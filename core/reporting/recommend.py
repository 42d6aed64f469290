"""Pick the variant to use: the fastest one at the chosen batch size whose quality loss stays within the budget.

Speed = geometric mean of the end-to-end p50 over the seq-length sweep at that batch size (see core.report); in a
generation run, the decode milliseconds per token (p50, geometric mean over the prompt lengths).
Budgets (defaults): embeddings cosine fidelity >= 0.99; classification accuracy drop <= 1 point;
causal LMs perplexity increase <= 2 %. A person may put a task's budget on another measure instead (core/tasks: e.g.
mean KL divergence <= 0.01 nats, retrieval agreement >= 0.95); the recommendation and the cell marks follow it.
fp32 always meets the budget, so when it is measured there is always an answer.
A variant whose outputs break the budget at a timed shape of that batch size (each latency cell is checked against
fp32's outputs on the same inputs, core/measure/cell_check.py) is passed over there, with the shape in the reason.
Size breaks ties: when another variant within budget is as fast as the fastest one within noise (its p50 within
5 %, or within the fastest one's own p90) and clearly smaller on disk, the smaller one is recommended.
"""

from __future__ import annotations

from ..tasks import EMBEDDING, default_budgets, find_task, get_task
from .cells import length, timed_cells
from .results import REFERENCE, VariantResult, speed_unit

DEFAULT_BUDGETS = default_budgets()   # every task's budget key -> its default, as each task declares it (core/tasks)
NOISE = 1.05          # p50s closer than this ratio are the same speed
SMALLER = 0.95        # a tie goes to a variant at most this fraction of the fastest one's size


def budget_words(task: str, budgets: dict | None) -> str:
    """The task's quality budget in words, on the measure ``budgets`` chose: 'cosine fidelity >= 0.99'."""
    budget, limit = find_task(task, default=EMBEDDING).chosen_budget(budgets)
    return budget.ascii_words(limit)


def budgets_for(budgets: dict | None) -> dict:
    """Every task's default budget, with what ``budgets`` gives on top (a picked measure's key stays beside its task's
    default one, and ``Task.chosen_budget`` prefers it)."""
    out = dict(DEFAULT_BUDGETS)
    out.update({k: float(v) for k, v in (budgets or {}).items() if v is not None})
    return out


def with_budget(budgets: dict | None, task: str, key: str, value: float) -> dict:
    """``budgets`` with ``task``'s budget on the measure ``key`` at ``value`` (its other measures dropped)."""
    t = find_task(task, default=EMBEDDING)
    out = {k: v for k, v in (budgets or {}).items() if t.budget_by_key(k) is None}
    out[key] = float(value)
    return out


def default_batch_size(batch_sizes: list[int]) -> int:
    """1 when the sweep has it (the interactive case), else the first requested batch size."""
    return 1 if 1 in batch_sizes else batch_sizes[0]


def check_budget(task: str, quality: dict, ref_quality: dict, budgets: dict) -> tuple[bool | None, str]:
    """(within budget?, words). None when the metric is missing."""
    return get_task(task).judge(quality, ref_quality, budgets)


def mark_cells(results, task: str, budgets: dict | None) -> None:
    """Set each checked latency cell's ``out_wrong`` from its outputs against fp32's and the task's budget
    (``Task.cell_verdict``, on the measure the budget is on); fp32's own cells and unchecked ones stay None."""
    t = get_task(task)
    for r in results:
        for c in timed_cells(r) if not r.error and r.variant != REFERENCE else []:
            ok, _ = t.cell_verdict(c, budgets)
            c.out_wrong = None if ok is None else not ok


def wrong_words(result: VariantResult, task: str, budgets: dict | None, batch_size: int | None = None) -> str | None:
    """'outputs are wrong at 32 tokens (cosine 0.836 vs fp32; 0.997 at 16)' for the cells (at ``batch_size``, or any) whose
    outputs break the budget; None when none does."""
    t = get_task(task)
    cells = [c for c in timed_cells(result) if batch_size is None or c.batch_size == batch_size]
    wrong = [c for c in cells if c.out_wrong]
    if not wrong:
        return None
    right = [c for c in cells if c.out_wrong is False and length(c) not in {length(w) for w in wrong}]
    lengths = sorted({length(c) for c in wrong})
    worst = max(wrong, key=_badness(t, budgets))
    where = f"{', '.join(map(str, lengths))}-token prompts" if result.generation else f"{', '.join(map(str, lengths))} tokens"
    if batch_size is None:
        where += f", batch {', '.join(str(b) for b in sorted({c.batch_size for c in wrong}))}"
    words = f"outputs are wrong at {where} ({t.cell_verdict(worst, budgets)[1]} vs fp32"
    if right:
        best = min(right, key=_badness(t, budgets))
        words += f"; {t.cell_verdict(best, budgets)[1]} at {length(best)}"
    return words + ")"


def _badness(task, budgets: dict | None):
    """How far a checked cell's outputs are from fp32's by the chosen measure (larger is worse); cells without it by the
    default measure, after those with it."""
    chosen, _ = task.chosen_budget(budgets)

    def bad(cell) -> tuple[int, float]:
        for rank, b in enumerate((chosen, task.budget)):
            value = b.cell_value(cell)
            if value is not None:
                return (-rank, -value if b.cell_higher else value)
        return (-2, 0.0)
    return bad


def _as_result(r) -> VariantResult:
    return r if isinstance(r, VariantResult) else VariantResult.from_dict(r)


def within_noise(fast: VariantResult, other: VariantResult, batch_size: int) -> bool:
    """True when ``other`` is as fast as ``fast`` at ``batch_size`` within the run's noise: its p50 is within 5 % of
    ``fast``'s, or no slower than ``fast``'s own p90."""
    a, b = fast.speed_at(batch_size), other.speed_at(batch_size)
    if not a or not b:
        return False
    p90 = fast.speed_p90_at(batch_size)
    return b <= a * NOISE or (p90 is not None and b <= p90)


def smaller_tie(candidates: list[tuple], by_name: dict, batch_size: int) -> tuple | None:
    """Among the candidates (p50, name, words) tied with the fastest within noise, the smallest on disk if it is clearly
    smaller than the fastest one; else None."""
    fastest = by_name[candidates[0][1]]
    tied = [c for c in candidates[1:] if by_name[c[1]].size_bytes and within_noise(fastest, by_name[c[1]], batch_size)]
    if not tied or not fastest.size_bytes:
        return None
    best = min(tied, key=lambda c: (by_name[c[1]].size_bytes, c[0]))
    return best if by_name[best[1]].size_bytes <= SMALLER * fastest.size_bytes else None


def recommend(results, task: str, budgets: dict | None, batch_size: int, reference_quality: dict | None = None) -> dict | None:
    """{"variant", "reason", "batch_size", "p50_ms", "speedup"} for the fastest variant within budget, or None."""
    rs = [_as_result(r) for r in results]
    mark_cells(rs, task, budgets)   # the cells' outputs judged by this budget (a Compare page may try another)
    ref = next((r for r in rs if r.variant == REFERENCE and not r.error), None)
    ref_q = reference_quality or (ref.quality if ref else {}) or {}
    ref_p50 = ref.speed_at(batch_size) if ref else None
    ms = speed_unit(rs)
    candidates, rejected = [], []
    for r in rs:
        if r.error:
            continue
        p50 = r.speed_at(batch_size)
        if p50 is None:
            continue
        if r.variant == REFERENCE:
            ok, words = True, "the reference"
        else:
            ok, words = check_budget(task, r.quality, ref_q, budgets)
            wrong = wrong_words(r, task, budgets, batch_size)   # a variant wrong at a timed shape is never recommended there
            if ok and wrong:
                ok, words = False, f"{wrong}, though its {words} on the data's own lengths"
        (candidates if ok else rejected).append((p50, r.variant, words))
    if not candidates:
        return None
    candidates.sort()
    p50, best, words = candidates[0]
    by_name = {r.variant: r for r in rs}
    size_note = ""
    tie = smaller_tie(candidates, by_name, batch_size)
    if tie:
        fastest, fastest_p50 = by_name[best], p50
        p50, best, words = tie
        mb = lambda n: by_name[n].size_bytes / 1e6  # noqa: E731
        size_note = (f"; {fastest.variant} is as fast within noise ({fastest_p50:.2f} {ms} vs {p50:.2f} {ms} p50) but "
                     f"{fastest.size_bytes / by_name[best].size_bytes:.1f}x larger on disk ({mb(fastest.variant):.1f} MB vs {mb(best):.1f} MB)")
    faster_rejected = sorted(x for x in rejected if x[0] < p50)
    if best == REFERENCE:
        reason = f"fp32 is the fastest within budget at batch {batch_size} ({p50:.2f} {ms} p50)"
        if faster_rejected:
            rp50, rname, rwords = faster_rejected[0]
            reason += f"; {rname} is faster ({rp50:.2f} {ms}) but its {rwords}"
        elif len(candidates) + len(rejected) > 1:
            reason += f"; no quantized variant beats it within the budget ({budget_words(task, budgets)})"
        speedup = 1.0
    elif ref_p50:
        speedup = ref_p50 / p50
        relation = f"{speedup:.1f}x faster than" if speedup >= 1.05 else ("as fast as" if speedup > 0.95 else f"{1 / speedup:.1f}x slower than")
        reason = f"{best} is {relation} fp32 at batch {batch_size} ({p50:.2f} {ms} vs {ref_p50:.2f} {ms} p50) with {words}"
        if faster_rejected:
            rp50, rname, rwords = faster_rejected[0]
            reason += f"; {rname} is faster still but its {rwords}"
    else:
        speedup = None
        others = [c for c in candidates if c[1] != best]
        runner_up = f", ahead of {others[0][1]} ({others[0][0]:.2f} {ms})" if others and not size_note else ""
        reason = f"{best} is the fastest within budget at batch {batch_size} ({p50:.2f} {ms} p50{runner_up}) with {words}; fp32 speed was not measured"
    reason += size_note
    return {"variant": best, "reason": reason, "batch_size": batch_size, "p50_ms": p50, "speedup": speedup}
