"""The standalone HTML report of a saved run: the machine, each variant against fp32, the whole-dataset throughput,
every Compare chart with plotly.js inline (it opens offline, no CDN) and the notes; a comparison across hardware
targets gets the cross-hardware chart and table, then one such section per target.

It sits above the charts and the run history (core/storage/history.py keeps the JSON and CSV exports, which need no figures)."""

from __future__ import annotations

import html
import re

from ..reporting.compare import cross_hardware_rows
from ..reporting.results import Report
from ..reporting.throughput_table import throughput_heading, throughput_rows
from ..storage.history import HISTORY_KEY
from .compare import compare_figures
from .cross_hardware import hardware_speedup_figure
from .report_access import is_generation, quality_spec, reference_rows


def _table_html(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if isinstance(value, float):
                value = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
            cells.append(f"<td>{html.escape('' if value is None else str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _throughput_html(report: dict) -> str:
    """The whole-dataset throughput table (sorted against unsorted, with spread and padding); empty when not measured."""
    rows = throughput_rows({k: v for k, v in report.items() if k != HISTORY_KEY})
    if not rows:
        return ""
    for row in rows:
        row["padding"] = " -> ".join(f"{v:.0%}" for v in (row["padding_unsorted"], row["padding_sorted"])) if row["padding_sorted"] is not None else "n/a"
    table = _table_html(rows, [("variant", "Variant"), ("sorted_range", "Sorted by length (texts/s)"), ("unsorted_range", "Data order (texts/s)"),
                               ("passes", "Passes per mode"), ("padding", "Padding, unsorted -> sorted"), ("words", "Verdict")])
    return f"<h2>Whole-dataset throughput</h2><p>{html.escape(throughput_heading(rows))}.</p>{table}"


def export_html(report: dict, _plotlyjs: bool = True) -> str:
    """A standalone HTML report: environment, table against fp32, notes and every chart, with plotly.js inline.
    A comparison across hardware targets gets the cross-hardware chart and table, then one such section per target."""
    if report.get("hardware"):
        return _export_html_across(report)
    env = report.get("environment") or {}
    figures = compare_figures(report)
    parts = []
    for i, fig in enumerate(figures.values()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0 and _plotlyjs), config={"displaylogo": False, "responsive": True}))
    rows = reference_rows(report)
    for row in rows:
        row["p50"] = row.get("p50_ms")
    speed = "p50 decode time per token (ms)" if is_generation(report) else "p50 latency (ms)"
    table = _table_html(rows, [("variant", "Variant"), ("words", "Against fp32"), ("p50", speed),
                               ("size_mb", "Size (MB)"), ("quality", quality_spec(report)[0])])
    tput_html = _throughput_html(report)
    rec = report.get("recommended") or {}
    rec_html = (f"<p class='rec'>Recommended: <b>{html.escape(str(rec.get('variant')))}</b> — {html.escape(str(rec.get('reason', '')))}</p>"
                if rec.get("variant") else "<p class='rec'>No variant met the quality budgets; fp32 stays the choice.</p>")
    notes = []
    for r in report.get("results") or []:
        for note in r.get("notes") or []:
            notes.append(f"<li><b>{html.escape(r['variant'])}</b>: {html.escape(note)}</li>")
        if r.get("error"):
            notes.append(f"<li><b>{html.escape(r['variant'])}</b> failed: {html.escape(str(r['error']))}</li>")
    env_rows = [
        ("CPU", env.get("cpu")), ("Instruction sets", ", ".join(env.get("instruction_sets") or []) or "none of note"),
        ("Cores / threads", f"{env.get('cores')} / {env.get('threads')}"), ("Device", env.get("device")),
        ("Quantized engine", env.get("quantized_engine")),
        ("Libraries", ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items())),
        ("Data", f"{(report.get('data') or {}).get('name', '')} ({(report.get('data') or {}).get('rows', '?')} rows)"),
        ("Run", f"{report.get('run_id', '')} · {report.get('created', '')}"),
    ]
    env_html = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in env_rows)
    title = f"Quantization Lab — {report.get('model', '')} ({report.get('task', '')})"
    body = f"""{rec_html}
<h2>Machine</h2><table>{env_html}</table>
<h2>Against the fp32 reference</h2>{table}
{tput_html}
<h2>Charts</h2>{''.join(f'<div class="chart">{p}</div>' for p in parts)}
<h2>Notes</h2><ul>{''.join(notes) or '<li>None.</li>'}</ul>"""
    return _html_page(title, body, "Exported from Quantization Lab. Timings are from the machine above; they do not transfer to other hardware.")


def _html_page(title: str, body: str, footer: str) -> str:
    """A standalone page with the export's style: the title as heading, ``body`` (HTML), ``footer`` (text)."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:Inter,'Source Sans Pro',Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}}
h1{{font-size:1.6rem}} h2{{font-size:1.2rem;margin-top:2rem}}
table{{border-collapse:collapse;margin:.5rem 0 1rem}} th,td{{border:1px solid #ddd;padding:.35rem .6rem;text-align:left;font-size:.9rem}}
th{{background:#f5f5f5}} .rec{{background:#fff7e0;border-left:4px solid #f2a900;padding:.5rem .8rem}}
.chart{{margin:1rem 0}} section{{border-top:2px solid #eee;margin-top:2rem}} footer{{color:#777;font-size:.8rem;margin-top:2rem}}
</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
<footer>{html.escape(footer)}</footer>
</body></html>"""


def _export_html_across(report: dict) -> str:
    """export_html for a comparison across hardware targets (see there)."""
    head = hardware_speedup_figure(report).to_html(full_html=False, include_plotlyjs=True, config={"displaylogo": False, "responsive": True})
    rows = [dict(r, target=r.get("name"), speed=r.get("speedup"), rec="★" if r.get("recommended") else "") for r in cross_hardware_rows(report)]
    table = _table_html(rows, [("target", "Target"), ("isa", "Instruction sets"), ("variant", "Variant"), ("p50_ms", "p50 latency (ms)"),
                               ("speed", "x fp32 speed"), ("words", "Against that target's fp32"), ("rec", "Recommended")])
    rep = Report.from_dict(report)
    sections = []
    for target in report["hardware"]:
        title = html.escape(f"{target.get('name')}: {target.get('cpu') or '?'}")
        if target.get("status") != "ok":
            sections.append(f"<h2>{title}</h2><p class='rec'>{html.escape(str(target.get('error') or target.get('status')))}</p>")
            continue
        body = export_html(rep.for_hardware(target["id"]).to_dict(), _plotlyjs=False)
        inner = re.search(r"<body>(.*)</body>", body, re.S).group(1).replace("<h1>", "<h2>").replace("</h1>", "</h2>")
        sections.append(f"<section><h2>{title}</h2>{inner}</section>")
    title = f"Quantization Lab — {report.get('model', '')} ({report.get('task', '')}) across {len(report['hardware'])} hardware targets"
    return _html_page(title, f'<div class="chart">{head}</div>\n{table}\n' + "".join(sections),
                      "Exported from Quantization Lab. Each target built and measured its own variants; timings do not transfer between machines.")
