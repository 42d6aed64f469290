"""The table the CLI prints: per variant size, speed per batch size, speed-up, quality and its change against fp32,
then the generation and whole-dataset throughput lines, memory, the recommendation and the notes."""

from __future__ import annotations

from ..tasks import get_task
from ..tasks.base import fmt as _fmt
from .cells import length, timed_cells
from .compare import compare_to_reference, reference_quality
from .results import Report, as_report, speed_unit
from .throughput_table import throughput_lines


def _target_heading(target: dict) -> str:
    isa = " ".join(target.get("isa") or []) or "no vector int8/bf16 flags"
    return f"== {target.get('name')} ({target.get('id')}): {target.get('cpu') or '?'}, {target.get('cores') or '?'} cores, {isa} =="



def _render(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def format_table(report, batch_size: int | None = None) -> str:
    """The table the CLI prints: variant, size MB, size ratio vs fp32, p50 ms per batch size (geo-mean over the seq
    sweep), speed-up vs fp32, quality metric, delta vs fp32, cache hit; then the recommendation and notes."""
    rep = as_report(report)
    if rep.hardware:
        return "\n\n".join(_target_heading(t) + "\n"
                             + (format_table(rep.for_hardware(t["id"]), batch_size) if t.get("status") == "ok" else f"  {t.get('error')}")
                             for t in rep.hardware)
    comparison = {row["variant"]: row for row in compare_to_reference(rep, batch_size)}
    bs_rec = next(iter(comparison.values()))["batch_size"] if comparison else batch_size
    task = get_task(rep.task)
    metric = task.primary
    seqs = ",".join(str(s) for s in rep.seq_lengths)
    unit = speed_unit(rep.results)
    headers = (["variant", "size MB", "x smaller"] + [f"p50 {unit} b={b}" for b in rep.batch_sizes]
               + [f"x faster b={bs_rec}", task.primary_label, "delta", "cached"])
    extra = [c for c in task.table_columns if not c.only_if_measured or any(c.key in r.quality for r in rep.results)]
    headers[-1:-1] = [c.header for c in extra]
    rows = []
    for r in rep.results:
        c = comparison[r.variant]
        if r.error:
            rows.append([r.variant, "-", "-"] + ["-"] * len(rep.batch_sizes) + ["-", "failed", "-"] + ["-"] * len(extra) + ["-"])
            continue
        cells = [r.variant + (" *" if rep.recommended and rep.recommended.get("variant") == r.variant else ""),
                 _fmt(r.size_bytes / 1e6 if r.size_bytes else None, ".1f"),
                 _fmt(c["size_ratio"], ".2f") + ("x" if c["size_ratio"] else "")]
        cells += [_fmt(r.speed_at(b), ".2f") for b in rep.batch_sizes]
        cells += [_fmt(c["speedup"], ".2f") + ("x" if c["speedup"] else ""), task.metric_cell(r.quality.get(metric)), task.delta_cell(c["quality_delta"])]
        cells += [col.cell(r.quality.get(col.key)) for col in extra]
        cells.append("yes" if r.cache_hit else "no")
        rows.append(cells)
    right = set(range(1, len(headers) - 1))
    load = (rep.settings.get("load_average") or {}).get("start")
    busy = (f" | load avg {load:.1f} at start" + (" (busy machine: timings are noisy)" if load > (rep.environment.get("cores") or 1) * 0.75 else "")
            if load is not None else "")
    out = [f"{rep.task} | model {rep.model} | data {rep.data.get('name', '?')} ({rep.data.get('rows', '?')} rows) | "
           f"{rep.environment.get('cpu', '?')}, {rep.environment.get('threads', '?')} threads, {rep.environment.get('device', 'cpu')}{busy}", "",
           _render(headers, rows, right), "",
           ]
    if unit == "ms":
        out.append(f"p50 = median end-to-end latency (tokenization included), geometric mean over seq lengths {seqs}; size = artifact on disk.")
    out += generation_lines(rep)
    out += check_lines(rep)
    out += throughput_lines(rep, bs_rec)
    mem = [(r.variant, r.peak_rss_bytes, r.baseline_rss_bytes) for r in rep.results if not r.error and r.peak_rss_bytes]
    if mem:
        out.append("Peak memory of each worker (libraries alone): " + ", ".join(
            f"{v} {p / 1e6:.0f} MB" + (f" ({b / 1e6:.0f} MB)" if b else "") for v, p, b in mem) + ".")
    note = task.table_note(reference_quality(rep))
    if note:
        out.append(note)
    rec = rep.recommended
    out.append("")
    out.append(f"Recommended: {rec['variant']} - {rec['reason']}" if rec
               else "Recommended: none - " + (rep.settings.get("no_recommendation_reason") or "no variant stays within the quality budget."))
    if len(rep.recommended_by_batch) > 1:   # the winner changes with the batch size a team deploys at
        out.append("By batch size: " + "; ".join(f"batch {b}: {r['variant']}" for b, r in sorted(rep.recommended_by_batch.items(), key=lambda i: int(i[0]))))
    notes = [(r.variant, n) for r in rep.results for n in ([f"FAILED: {r.error}"] if r.error else []) + r.notes]
    if notes:
        out += ["", "Notes:"]
        out += [f"  {v}: {n}" for v, n in notes]
    return "\n".join(out)


def _check_cell(task, cell, budgets: dict) -> str:
    """One cell of the check table: the chosen measure's value on the cell (or the default measure's where the cell has
    too few texts for it), WRONG when the run marked it so."""
    chosen, _ = task.chosen_budget(budgets)
    shown = chosen if chosen.cell_value(cell) is not None else task.budget
    value = shown.cell_value(cell)
    return _fmt(value, shown.cell_fmt) + ("" if shown is chosen else f" ({shown.cell_name})") + (" WRONG" if cell.out_wrong else "")


def check_lines(rep: Report) -> list[str]:
    """Each timed cell's outputs against fp32's on the same inputs (core.measure.cell_check), one row per variant."""
    checked = [r for r in rep.results if not r.error and any(c.checked for c in timed_cells(r))]
    if not checked:
        return []
    task = get_task(rep.task)
    cells = sorted({(c.batch_size, length(c)) for r in checked for c in timed_cells(r)})
    axis = "p" if any(r.generation for r in checked) else "s"
    chosen, limit = task.chosen_budget(rep.budgets)
    rows = []
    for r in checked:
        by = {(c.batch_size, length(c)): c for c in timed_cells(r)}
        rows.append([r.variant] + [_check_cell(task, by[k], rep.budgets) if k in by else "-" for k in cells])
    headers = ["outputs vs fp32"] + [f"b={b} {axis}={s}" for b, s in cells]
    return ["", f"Each timed cell's outputs against fp32's on the same inputs ({chosen.cell_name}; WRONG: beyond the budget, "
                f"{chosen.ascii_words(limit)}):",
            _render(headers, rows, set(range(1, len(headers)))), ""]


def generation_lines(rep: Report) -> list[str]:
    """The generation scenario's table: per variant, batch size and prompt length, TTFT, decode ms/token, tokens/s."""
    rows = []
    for r in rep.results:
        for c in r.generation:
            rows.append([r.variant, str(c.batch_size), str(c.prompt_len), str(c.new_tokens), _fmt(c.ttft_ms, ".1f"),
                         _fmt(c.decode_ms_per_token_p50, ".2f"), _fmt(c.decode_ms_per_token_p90, ".2f"), _fmt(c.tokens_per_s, ".1f"),
                         "yes" if c.kv_cache else "NO", _fmt(r.generation_agreement * 100 if r.generation_agreement is not None else None, ".0f") + "%"])
    if not rows:
        return []
    headers = ["variant", "batch", "prompt", "new", "TTFT ms", "ms/token p50", "ms/token p90", "tokens/s", "KV cache", "agree"]
    new = rep.settings.get("new_tokens")
    return ["", f"Generation (greedy{f', {new} new tokens' if new else ''}): TTFT = prompt tokenized and prefilled, first token chosen; "
                "ms/token = each further token; tokens/s = generated tokens / whole generation time; agree = greedy tokens equal to fp32's.",
            _render(headers, rows, set(range(1, len(headers)))), ""]
