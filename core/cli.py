"""``python -m core``: models, variants, evaluate, hardware, prepare, export, store, history.

Exit codes: 0 success; 2 bad input (one line on stderr, prefixed "error: ", never a traceback); 1 an unexpected
failure (a bug: its traceback is printed); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from .errors import QlabError
from .scenarios import DEFAULT as SCENARIO_DEFAULT
from .scenarios import SCENARIOS, get_scenario
from .tasks import TASKS, all_tasks

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(QlabError):
    pass


class Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one 'error: ...' line (exit 2) instead of usage + message."""

    def error(self, message):
        command = self.prog.replace("python -m core", "", 1).strip()
        raise UsageError(f"{message} (see: python -m core {command + ' ' if command else ''}--help)")


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


# -- models -----------------------------------------------------------------------------------------
def models_table() -> list[dict]:
    from .bundled import BUNDLED, bundled_path

    rows = []
    for name, model in BUNDLED.items():
        try:
            path = bundled_path(name, build=False)
        except QlabError:
            path = None
        rows.append({
            "name": name, "task": model.task,
            "source": "bundled (packaged)" if model.packaged_path else "bundled (built here on first use)",
            "description": model.description,
            "path": str(path) if path is not None and Path(path).is_dir() else None,
        })
    return rows


def _print_rows(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def cmd_models(args) -> int:
    rows = models_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    _print_rows(["name", "task", "source", "path"], [[r["name"], r["task"], r["source"], r["path"] or "(not built yet: python -m core prepare)"] for r in rows])
    print("\nAlso accepted: a Hugging Face hub id (when cached or online) or a local folder saved with save_pretrained.")
    return EXIT_OK


# -- variants ---------------------------------------------------------------------------------------
def variants_table(device: str = "cpu") -> list[dict]:
    from .recipes import RECIPES

    return [r.describe(device) for r in RECIPES.values()]


def cmd_variants(args) -> int:
    rows = variants_table(args.device)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    table = []
    for r in rows:
        params = " ".join(f"{k}={p['default']}" + (f" ({'|'.join(p['choices'])})" if p["choices"] else "") for k, p in r["params"].items()) or "-"
        status = "yes" if r["available"] else f"no: {r['reason']}"
        if r.get("deprecated"):
            status += " (deprecated API)"
        table.append([r["name"], r["family"], ",".join(r["tasks"]) if len(r["tasks"]) < 3 else "all", params, status])
    _print_rows(["variant", "family", "tasks", "parameters (default)", f"available on {args.device}"], table)
    print("\nSet parameters with name:key=value, e.g. dynamic-int8:engine=qnnpack or onnx-int8:per_channel=false.")
    return EXIT_OK


# -- evaluate ---------------------------------------------------------------------------------------
class ProgressView:
    """tqdm bar on a terminal; one line per phase change otherwise (logs, CI)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bar = None
        self.last = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=1000, file=self.stream, unit="", bar_format="{l_bar}{bar}| {elapsed}<{remaining}", dynamic_ncols=True, leave=False)

    def __call__(self, event: dict) -> None:
        head = f"[{event.get('index', 0) + 1}/{event.get('total', 1)}] {event.get('variant', '')}"
        if event.get("target"):
            head = f"{event['target']}: {head}"
        if self.bar is not None:
            self.bar.set_description_str(f"{head} {event.get('phase', '')}: {event.get('message', '')[:48]}", refresh=False)
            self.bar.update(max(0, int(event.get("fraction", 0) * 1000) - self.bar.n))
            return
        key = (event.get("target"), event.get("variant"), event.get("phase"))
        if key != self.last:
            self.last = key
            print(f"{head} {event.get('phase', '')}: {event.get('message', '')}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _infer_task(model: str, allow_local: bool = True) -> str:
    from .bundled import BUNDLED
    from .inputs.sources import resolve

    if model in BUNDLED:
        return BUNDLED[model].task
    return resolve(model, None, allow_local=allow_local).task


def _default_out(config) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(config.model).name or config.model).strip("-") or "model"
    return Path("reports") / f"{slug}-{config.task}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def cmd_evaluate(args) -> int:
    from .engine.evaluate import EvalConfig, validate
    from .execution.targets import lost_targets
    from .reporting.csv_export import report_to_csv
    from .reporting.results import report_to_json
    from .reporting.schema import checked_json
    from .reporting.table import format_table

    task = args.task or _infer_task(args.model)
    budgets = {b.key: getattr(args, b.dest) for t in all_tasks() for b in t.all_budgets if getattr(args, b.dest) is not None}
    for t in all_tasks():   # one measure per task, whatever the values
        given = [b.flag for b in t.all_budgets if b.key in budgets]
        if len(given) > 1:
            raise QlabError(f"{t.name} takes one quality budget, on one measure; got {' and '.join(given)}: keep one.")
    protocol = {k: v for k, v in (("warmup", args.warmup), ("min_iters", args.min_iters), ("min_seconds", args.min_seconds), ("max_seconds", args.max_seconds))
                if v is not None}
    config = EvalConfig(
        task=task, model=args.model, variants=_csv_list(args.variants), data=args.data,
        batch_sizes=_csv_list(args.batch_sizes or get_scenario(args.scenario).default_batch_sizes), seq_lengths=_csv_list(args.seq_lengths),
        threads=args.threads, device=args.device, max_length=args.max_length, budgets=budgets, recommend_batch_size=args.recommend_batch_size,
        stride=args.stride, protocol=protocol or None, throughput_batch_size=args.throughput_batch_size,
        scenario=args.scenario, prompt_lengths=_csv_list(args.prompt_lengths), new_tokens=args.new_tokens, calibration=args.calibration,
    )
    config = validate(config)
    chosen = _chosen_targets(args.hardware)
    out = Path(args.out) if args.out else _default_out(config)
    view = ProgressView()
    try:
        report = _measure(config, chosen, view)
    finally:
        view.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(checked_json(report), encoding="utf-8")   # what the lab writes, its import reads
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        Path(args.csv).write_text(report_to_csv(report), encoding="utf-8")
    if args.json:
        print(report_to_json(report))
    else:
        print(format_table(report))
        print(f"\nReport: {out}" + (f"  CSV: {args.csv}" if args.csv else ""))
    lost = lost_targets(report)
    for target in lost:
        print(f"error: hardware target {target['name']}: {target['error']}; the report keeps the other targets' results.", file=sys.stderr)
    return EXIT_BUG if lost else EXIT_OK


def _chosen_targets(selection: str | None) -> list[dict]:
    from .execution.targets import choose, cluster_configured, list_targets, parse_selection

    wanted = parse_selection(selection)
    if wanted == ["local"] and not cluster_configured():
        from .execution.hardware import LOCAL_ID

        return [{"id": LOCAL_ID, "name": "this machine", "node_id": None, "alive": True}]
    return choose(wanted, list_targets())


def _measure(config, chosen: list[dict], progress) -> dict:
    """Run the comparison: under this machine's measurement lock when it runs here, across the cluster otherwise."""
    from .engine.evaluate import WORKER
    from .execution.machine_lock import machine_lock
    from .execution.targets import run_across
    from .paths import store_root

    if len(chosen) == 1 and not chosen[0].get("node_id"):
        def waiting(message: str) -> None:
            progress({"variant": config.model, "index": 0, "total": len(config.variants), "phase": "build", "fraction": 0.0, "message": message})

        with machine_lock(store_root(), {"by": "command-line evaluation", "model": config.model}, on_wait=waiting):
            return run_across(config, chosen, worker=WORKER, progress=progress)
    return run_across(config, chosen, worker=WORKER, progress=progress)


# -- hardware ---------------------------------------------------------------------------------------
def cmd_hardware(args) -> int:
    from .execution.hardware import speedup_hint
    from .execution.targets import list_targets

    rows = list_targets()
    if args.json:
        print(json.dumps([{k: r.get(k) for k in ("id", "name", "node_id", "cpu", "arch", "cores", "isa", "gpu", "alive")}
                          | {"this_machine": bool(r.get("this_machine") or r["id"] == "local"), "runtimes": (r.get("probe") or {}).get("runtimes")}
                          for r in rows], indent=2))
        return EXIT_OK
    table = [[r["id"], r["name"], str(r.get("cpu") or "?"), str(r.get("cores") or "?"), " ".join(r.get("isa") or []) or "-",
              r.get("gpu") or "-", ("alive" if r.get("alive") else "lost") + (" (this machine)" if r.get("this_machine") else ""),
              speedup_hint(r.get("isa") or [])] for r in rows]
    _print_rows(["id", "name", "cpu", "cores", "isa", "gpu", "state", "int8"], table)
    return EXIT_OK


# -- prepare ----------------------------------------------------------------------------------------
def cmd_prepare(args) -> int:
    from tqdm import tqdm

    from .bundled import BUNDLED, bundled_path

    names = _csv_list(args.models) if args.models else list(BUNDLED)
    unknown = [n for n in names if n not in BUNDLED]
    if unknown:
        raise QlabError(f"Unknown bundled model '{unknown[0]}'; bundled models are: {', '.join(BUNDLED)}.")
    failed = []
    for name in names:
        bar = tqdm(total=100, desc=f"{name}", file=sys.stderr, leave=True, disable=None, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")

        def progress(fraction, message, bar=bar):
            bar.set_description_str(f"{name}: {str(message)[:50]}", refresh=False)
            bar.update(max(0, int(float(fraction) * 100) - bar.n))

        started = time.perf_counter()
        try:
            path = bundled_path(name, progress=progress)
            bar.update(100 - bar.n)
            bar.close()
            print(f"{name}: ready at {path} ({time.perf_counter() - started:.1f} s)")
        except ImportError as err:
            bar.close()
            failed.append(name)
            print(f"error: cannot build {name}: its builder is not available in this checkout ({err}).", file=sys.stderr)
        except QlabError as err:
            bar.close()
            failed.append(name)
            print(f"error: cannot build {name}: {err}", file=sys.stderr)
    return EXIT_USAGE if failed else EXIT_OK


# -- store ------------------------------------------------------------------------------------------
def _store_row(e: dict, leased: set[str]) -> list[str]:
    return [e["key"][:12], str(e.get("kind", "")), str(e.get("model", "")), str(e.get("label") or e.get("recipe") or ""),
            f"{int(e.get('size_bytes', 0)) / 1e6:.1f}", f"{e.get('build_s', '')}", time.strftime("%Y-%m-%d %H:%M", time.localtime(e.get("last_used", 0))),
            "in use" if e["key"] in leased else ""]


def cmd_store(args) -> int:
    """store list | verify [--repair] | clear, each with --json; --delete KEY and --clear kept from before."""
    from .storage.store import ModelStore

    store = ModelStore()
    action = "clear" if args.clear else args.action
    if args.delete:
        keys = [e["key"] for e in store.entries()]
        matches = [k for k in keys if k == args.delete] or [k for k in keys if k.startswith(args.delete)]
        if len(matches) != 1:
            raise QlabError(f"No store entry '{args.delete}'" + (" (ambiguous prefix)" if len(matches) > 1 else "") + "; list them with: python -m core store")
        store.delete(matches[0])
        print(json.dumps({"deleted": matches[0]}) if args.json else f"deleted {matches[0]}")
        return EXIT_OK
    if action == "clear":
        before = {e["key"] for e in store.entries()}
        n = store.clear()
        kept = sorted(before & {e["key"] for e in store.entries()})
        if args.json:
            print(json.dumps({"root": str(store.root), "cleared": n, "kept_in_use": kept}))
        else:
            print(f"cleared {n} entr{'y' if n == 1 else 'ies'} from {store.root}" + (f"; kept {len(kept)} in use" if kept else ""))
        return EXIT_OK
    if action == "verify":
        started = time.perf_counter()
        results = store.verify_all()
        damaged = {k: v for k, v in results.items() if v}
        repaired = []
        if args.repair:
            for key in damaged:
                if store.repair(key):  # checked again under the entry's lock, then removed (or an orphan re-indexed)
                    repaired.append(key)
        elapsed = time.perf_counter() - started
        if args.json:
            print(json.dumps({"root": str(store.root), "checked": len(results), "damaged": damaged, "removed": repaired,
                              "seconds": round(elapsed, 3)}, indent=2))
        else:
            for key, problems in damaged.items():
                for problem in problems:
                    print(f"{key[:12]}  {problem}")
            verdict = (f"{len(damaged)} damaged" + (f", {len(repaired)} repaired (removed ones are rebuilt on next use)" if repaired
                                                     else "; remove them with: python -m core store verify --repair")) if damaged else "all intact"
            print(f"verified {len(results)} entr{'y' if len(results) == 1 else 'ies'} in {elapsed:.2f} s: {verdict}", file=sys.stderr)
        return EXIT_BUG if set(damaged) - set(repaired) else EXIT_OK
    entries = store.entries()
    leased = store.leased_keys()
    total = store.total_bytes()
    if args.json:
        print(json.dumps({"root": str(store.root), "total_bytes": total, "entries_bytes": store.entries_bytes(), "size_limit": store.size_limit,
                          "leased": sorted(leased), "entries": entries}, indent=2, default=str))
        return EXIT_OK
    print(f"store: {store.root}  ({total / 1e6:.1f} MB of {store.size_limit / 1e9:.1f} GB, {len(entries)} entries)")
    if entries:
        _print_rows(["key", "kind", "model", "variant", "MB", "build s", "last used", ""], [_store_row(e, leased) for e in entries])
    return EXIT_OK


# -- history ----------------------------------------------------------------------------------------
def _find_run(prefix: str) -> str:
    from .storage import history

    prefix = (prefix or "").strip().lower()
    if history.valid_run_id(prefix):
        return prefix
    if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix):
        raise QlabError(f"'{prefix[:40]}' is not a run id; give the 32 hex characters of one, or at least 4 of them (python -m core history list).")
    matches = sorted(p.stem for p in history.runs_dir().glob(f"{prefix}*.json") if history.valid_run_id(p.stem))
    if len(matches) != 1:
        raise QlabError(f"{'No' if not matches else 'More than one'} saved run starts with '{prefix}'; list them with: python -m core history list")
    return matches[0]


def cmd_audit(args) -> int:
    from .storage import audit

    lines = audit.read(since=audit.parse_since(args.since), limit=args.tail)
    if args.json:
        print(json.dumps(lines, indent=2))
        return EXIT_OK
    print(f"{len(lines)} audit line{'s' if len(lines) != 1 else ''} in {audit.audit_path()}")
    for line in lines:
        print(audit.format_line(line))
    return EXIT_OK


def cmd_history(args) -> int:
    from .storage import history

    if args.action == "list":
        runs = history.list_runs()
        if args.json:
            print(json.dumps([{k: v for k, v in r.items() if k != "created_ts"} for r in runs], indent=2))
            return EXIT_OK
        print(f"{len(runs)} saved run{'s' if len(runs) != 1 else ''} in {history.runs_dir()}")
        if runs:
            _print_rows(["run", "created", "model", "task", "variants", "imported"],
                        [[r["run_id"], r["created"], str(r["model"])[:40], r["task"], str(r["variants"])[:60], "yes" if r["imported"] else ""] for r in runs])
        return EXIT_OK
    if args.action == "import":
        if not args.target:
            raise UsageError("history import needs a FILE (a report exported as JSON)")
        path = Path(args.target).expanduser()
        if not path.is_file():
            raise QlabError(f"Report file '{args.target}' does not exist (or is not a file).")
        if path.stat().st_size > history.MAX_IMPORT_BYTES:
            raise QlabError(f"'{path.name}' is {path.stat().st_size / 2**20:.1f} MB; reports are at most {history.MAX_IMPORT_BYTES // 2**20} MB.")
        try:
            blob = path.read_bytes()
        except OSError as err:
            raise QlabError(f"Report file '{args.target}' cannot be read ({err.strerror or err.__class__.__name__}).") from None
        run_id = history.import_report(blob, path.name)
        print(json.dumps({"run_id": run_id, "imported": path.name}) if args.json else f"imported {path.name} as run {run_id}")
        return EXIT_OK
    # export
    if not args.target:
        raise UsageError("history export needs a run ID (python -m core history list)")
    run_id = _find_run(args.target)
    report = history.load_run(run_id)
    fmt = "json" if args.json else args.format
    if fmt == "html":
        from .charts.html_report import export_html  # the charts (plotly) only for the HTML export

        text = export_html(report)
    else:
        text = {"json": history.export_json, "csv": history.export_csv}[fmt](report)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"run {run_id} written to {out} ({fmt})", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


# -- export -----------------------------------------------------------------------------------------
def cmd_export(args) -> int:
    from .access import hosting
    from .exporting.export import export_variant
    from .storage import exports

    if args.max_mb is not None and args.max_mb <= 0:
        raise UsageError("--max-mb must be a positive number of megabytes.")

    def say(message: str) -> None:  # on a terminal only: piped, stderr holds nothing but a failure's one line
        if sys.stderr.isatty():
            print(f"{message} ...", file=sys.stderr, flush=True)

    done = export_variant(args.model, args.variant, args.out, task=args.task, make_zip=args.zip, build=not args.no_build,
                          max_bytes=int(args.max_mb * 2**20) if args.max_mb else None, progress=say,
                          allow_local=args.origin != "dashboard" or hosting.policy().allow_local)
    exports.record(done, origin=args.origin)
    measured = done.meta.get("measured")
    print(f"exported {done.meta['model']} · {done.meta['variant']['spec']} ({done.meta['task']}) to {done.folder} ({done.bytes / 2**20:.1f} MB)")
    if done.zip_path:
        print(f"zip: {done.zip_path} ({done.zip_path.stat().st_size / 2**20:.1f} MB)")
    print("measured here: " + (f"run {measured['run_id'][:8]} on {measured['cpu']}" if measured else done.meta.get("measured_note") or "no"))
    print(f"\nLoad and run it (needs {', '.join(done.meta['runtime'])}; from inside the folder):\n")
    print(done.code)
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------------
def build_parser() -> Parser:
    parser = Parser(prog="python -m core", description="Quantization Lab: compare quantized variants of a model on this machine.")
    sub = parser.add_subparsers(dest="command", metavar="{models,variants,evaluate,hardware,prepare,export,store,history,audit}")

    p = sub.add_parser("models", help="the bundled models and where they are on disk")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("variants", help="the quantization recipes, their parameters and availability here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.set_defaults(func=cmd_variants)

    p = sub.add_parser("evaluate", help="measure variants of a model: quality vs fp32, latency, size")
    p.add_argument("--task", choices=TASKS, help="embedding, classification or causal-lm (default: the model's own)")
    p.add_argument("--model", required=True, help="bundled name, hub id or local Hugging Face folder")
    p.add_argument("--variants", required=True, help="comma-separated variant specs, or all")
    p.add_argument("--data", help="CSV/TSV/JSONL/TXT file (default: the task's bundled sample)")
    p.add_argument("--batch-sizes", help="comma-separated (default 1,8; 1 in the generate scenario)")
    p.add_argument("--seq-lengths", default="16,64", help="comma-separated token counts (default 16,64)")
    p.add_argument("--scenario", choices=list(SCENARIOS), default=SCENARIO_DEFAULT,
                   help="latency: one forward pass per batch x seq length; generate (causal-lm): greedy decoding with a KV cache, "
                        "time to first token and ms per token (default latency)")
    p.add_argument("--prompt-lengths", default="32,128", help="generate: prompt tokens, comma-separated (default 32,128)")
    p.add_argument("--new-tokens", default=32, type=int, help="generate: tokens generated after each prompt (default 32)")
    p.add_argument("--calibration", default="sample", help="what static int8 variants (onnx-int8-static, onnx-int8-mixed, openvino-int8) "
                   "calibrate on: sample (the task's bundled calibration texts, held out; default) or data (this run's first 64 texts)")
    p.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: library default)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--max-length", type=int, default=128, help="truncation for quality inputs; causal-lm context (default 128)")
    p.add_argument("--stride", type=int, help="causal-lm perplexity window stride (default half the context)")
    for t in all_tasks():   # each measure's budget flag: --min-cosine, --max-accuracy-drop, --max-ppl-increase, --max-kl-mean, ...
        for b in t.all_budgets:
            p.add_argument(b.flag, type=float, help=b.cli_help)
    p.add_argument("--recommend-batch-size", type=int, help="batch size the recommendation is made at (default 1 if measured, else the first)")
    p.add_argument("--throughput-batch-size", type=int, default=32,
                   help="batch size of the whole-dataset throughput, sorted by length vs data order (default 32, capped at the number of texts)")
    p.add_argument("--warmup", type=int, help="latency warm-up runs per cell (default 2)")
    p.add_argument("--min-iters", type=int, help="latency iterations per cell, at least (default 10)")
    p.add_argument("--min-seconds", type=float, help="latency seconds per cell, at least (default 0.5)")
    p.add_argument("--max-seconds", type=float, help="latency seconds per cell, at most (default 10)")
    p.add_argument("--out", help="report JSON path (default reports/<model>-<task>-<time>.json)")
    p.add_argument("--csv", help="also write a flat CSV (one row per variant x batch x seq)")
    p.add_argument("--json", action="store_true", help="print the report JSON instead of the table")
    p.add_argument("--hardware", default="local", help="where to measure: local, all, or comma-separated target ids (python -m core hardware)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("hardware", help="the hardware targets: this machine, or every node of the Ray cluster in QLAB_RAY_ADDRESS")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hardware)

    p = sub.add_parser("prepare", help="build every bundled model ahead of time")
    p.add_argument("--models", help="comma-separated subset (default: all)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("export", help="write a built variant as a folder that runs without the lab (builds it if needed)")
    p.add_argument("--model", required=True, help="bundled name, hub id or local Hugging Face folder")
    p.add_argument("--variant", required=True, help="one variant spec, e.g. onnx-int8 or dynamic-int8:engine=x86")
    p.add_argument("--out", required=True, help="a new (or empty) folder to write")
    p.add_argument("--task", choices=TASKS, help="embedding, classification or causal-lm (default: the model's own)")
    p.add_argument("--zip", action="store_true", help="also write OUT.zip holding the same folder")
    p.add_argument("--no-build", action="store_true", help="refuse instead of building a variant that is not in the store")
    p.add_argument("--max-mb", type=float, help="refuse an export larger than this many MB")
    p.add_argument("--origin", default="cli", choices=["cli", "dashboard"], help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("store", help="list, verify or clear the model store")
    p.add_argument("action", nargs="?", choices=["list", "verify", "clear"], default="list",
                   help="list entries (default); verify every file against its manifest (exit 1 if any is damaged); clear entries not in use")
    p.add_argument("--json", action="store_true")
    p.add_argument("--repair", action="store_true", help="with verify: remove damaged entries (they are rebuilt on next use)")
    p.add_argument("--clear", action="store_true", help="same as: store clear")
    p.add_argument("--delete", metavar="KEY", help="delete one entry (key or unique prefix)")
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("history", help="saved runs: list them, import a colleague's JSON report, export one")
    p.add_argument("action", choices=["list", "import", "export"], help="list | import FILE | export ID")
    p.add_argument("target", nargs="?", help="import: the report JSON file; export: a run id (or a unique prefix of at least 4 hex digits)")
    p.add_argument("--json", action="store_true", help="machine-readable output (export: the report JSON)")
    p.add_argument("--format", choices=["json", "csv", "html"], default="json", help="export format (default json)")
    p.add_argument("--out", help="export: write to this file instead of stdout")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("audit", help="the audit log: who ran, deleted, exported, imported, shared and revoked what, and when")
    p.add_argument("--since", help="only lines from then on: a duration (30m, 24h, 7d) or a date (2026-12-01, 2026-12-01T09:00 UTC)")
    p.add_argument("--tail", type=int, help="only the last N lines")
    p.add_argument("--json", action="store_true", help="the lines as a JSON list")
    p.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except QlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:  # noqa: BLE001 - a bug: show it
        import traceback

        traceback.print_exc()
        print(f"error: unexpected failure ({err.__class__.__name__}); this is a bug, please report it with the traceback above.", file=sys.stderr)
        return EXIT_BUG
