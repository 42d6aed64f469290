"""The whole-dataset throughput of a report for people: one row per measured variant, the heading, the CLI lines."""

from __future__ import annotations

from .results import as_report
from .throughput import DatasetThroughput, ThroughputMode, throughput_summary


def _range_text(mode: ThroughputMode) -> str:
    med, lo, hi = mode.rate(), mode.rate("texts_per_s_min"), mode.rate("texts_per_s_max")
    if med is None:
        return "-"
    return f"{med:.0f}" + (f" [{lo:.0f}-{hi:.0f}]" if lo is not None and hi is not None else "")


def throughput_rows(report) -> list[dict]:
    """Per measured variant: batch size, sorted / unsorted median texts/s with their ranges as text ("412 [398-420]"),
    passes, padding fractions, the gain and the verdict in words (see throughput_summary). Old reports give what they have."""
    rep = as_report(report)
    rows = []
    for r in rep.results:
        dt = DatasetThroughput.from_dict(r.dataset_throughput)
        summary = None if r.error else throughput_summary(dt)
        if summary is None:
            continue
        rows.append({"variant": r.variant, "batch_size": summary["batch_size"], "texts": dt.mode("sorted").texts,
                     "sorted_texts_per_s": summary["sorted"], "unsorted_texts_per_s": summary["unsorted"],
                     "sorted_range": _range_text(dt.mode("sorted")), "unsorted_range": _range_text(dt.mode("unsorted")),
                     "passes": summary["passes"][0], "padding_sorted": (summary["padding"] or (None, None))[0],
                     "padding_unsorted": (summary["padding"] or (None, None))[1], "gain": summary["gain"],
                     "within_noise": summary["within_noise"], "words": summary["words"]})
    return rows


def throughput_heading(rows: list[dict]) -> str:
    """"Whole dataset (120 texts) at batch 32, texts/s sorted by length / in data order, median [min-max] over 5 alternated passes per mode"."""
    if not rows:
        return ""
    texts, passes = rows[0].get("texts"), sorted({r["passes"] for r in rows if r.get("passes")})
    return (f"Whole dataset{f' ({texts} texts)' if texts else ''} at batch {rows[0].get('batch_size', '?')}, texts/s sorted by length / in data order"
            + (f", median [min-max] over {'/'.join(map(str, passes))} alternated passes per mode" if passes else ""))


def throughput_lines(report, batch_size: int | None = None) -> list[str]:
    """The CLI's whole-dataset throughput lines: per variant, median [min-max] texts/s sorted / unsorted, padding, verdict."""
    rows = throughput_rows(report)
    if not rows:
        return []
    return [throughput_heading(rows) + ":"] + [f"  {r['variant']}: {r['sorted_range']} / {r['unsorted_range']}; {r['words']}." for r in rows]
