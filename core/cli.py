"""``python -m core``: models, variants, evaluate, prepare, export, store.

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
            "source": "bundled (packaged)" if model.packaged_path else "bundled (trained here on first use)",
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
        if self.bar is not None:
            self.bar.set_description_str(f"{head} {event.get('phase', '')}: {event.get('message', '')[:48]}", refresh=False)
            self.bar.update(max(0, int(event.get("fraction", 0) * 1000) - self.bar.n))
            return
        key = (event.get("variant"), event.get("phase"))
        if key != self.last:
            self.last = key
            print(f"{head} {event.get('phase', '')}: {event.get('message', '')}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _infer_task(model: str, allow_local: bool = True) -> str:
    from .bundled import BUNDLED
    from .sources import resolve

    if model in BUNDLED:
        return BUNDLED[model].task
    return resolve(model, None, allow_local=allow_local).task


def _default_out(config) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(config.model).name or config.model).strip("-") or "model"
    return Path("reports") / f"{slug}-{config.task}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def cmd_evaluate(args) -> int:
    from .evaluate import EvalConfig, run_evaluation, validate
    from .report import format_table, report_to_csv, report_to_json

    task = args.task or _infer_task(args.model)
    budgets = {k: v for k, v in (("min_cosine", args.min_cosine), ("max_accuracy_drop", args.max_accuracy_drop), ("max_ppl_increase", args.max_ppl_increase)) if v is not None}
    protocol = {k: v for k, v in (("warmup", args.warmup), ("min_iters", args.min_iters), ("min_seconds", args.min_seconds), ("max_seconds", args.max_seconds)) if v is not None}
    config = EvalConfig(
        task=task, model=args.model, variants=_csv_list(args.variants), data=args.data,
        batch_sizes=_csv_list(args.batch_sizes), seq_lengths=_csv_list(args.seq_lengths), threads=args.threads, device=args.device,
        max_length=args.max_length, budgets=budgets, recommend_batch_size=args.recommend_batch_size, stride=args.stride, protocol=protocol or None,
    )
    config = validate(config)
    out = Path(args.out) if args.out else _default_out(config)
    view = ProgressView()
    try:
        report = run_evaluation(config, progress=view)
    finally:
        view.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_to_json(report), encoding="utf-8")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        Path(args.csv).write_text(report_to_csv(report), encoding="utf-8")
    if args.json:
        print(report_to_json(report))
    else:
        print(format_table(report))
        print(f"\nReport: {out}" + (f"  CSV: {args.csv}" if args.csv else ""))
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
def cmd_store(args) -> int:
    from .store import ModelStore

    store = ModelStore()
    if args.delete:
        keys = [e["key"] for e in store.entries()]
        matches = [k for k in keys if k == args.delete] or [k for k in keys if k.startswith(args.delete)]
        if len(matches) != 1:
            raise QlabError(f"No store entry '{args.delete}'" + (" (ambiguous prefix)" if len(matches) > 1 else "") + "; list them with: python -m core store")
        store.delete(matches[0])
        print(f"deleted {matches[0]}")
        return EXIT_OK
    if args.clear:
        n = store.clear()
        print(f"cleared {n} entr{'y' if n == 1 else 'ies'} from {store.root}")
        return EXIT_OK
    entries = store.entries()
    if args.json:
        print(json.dumps({"root": str(store.root), "total_bytes": store.total_bytes(), "size_limit": store.size_limit, "entries": entries}, indent=2, default=str))
        return EXIT_OK
    rows = [[e["key"][:12], str(e.get("kind", "")), str(e.get("model", "")), str(e.get("label") or e.get("recipe") or ""),
             f"{int(e.get('size_bytes', 0)) / 1e6:.1f}", f"{e.get('build_s', '')}", time.strftime("%Y-%m-%d %H:%M", time.localtime(e.get("last_used", 0)))]
            for e in entries]
    print(f"store: {store.root}  ({store.total_bytes() / 1e6:.1f} MB of {store.size_limit / 1e9:.1f} GB, {len(entries)} entries)")
    if rows:
        _print_rows(["key", "kind", "model", "variant", "MB", "build s", "last used"], rows)
    return EXIT_OK


# -- export -----------------------------------------------------------------------------------------
def cmd_export(args) -> int:
    from . import exports, hosting
    from .export import export_variant

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
    from .tasks import TASKS

    parser = Parser(prog="python -m core", description="Quantization Lab: compare quantized variants of a model on this machine.")
    sub = parser.add_subparsers(dest="command", metavar="{models,variants,evaluate,prepare,export,store}")

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
    p.add_argument("--batch-sizes", default="1,8", help="comma-separated (default 1,8)")
    p.add_argument("--seq-lengths", default="16,64", help="comma-separated token counts (default 16,64)")
    p.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: library default)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--max-length", type=int, default=128, help="truncation for quality inputs; causal-lm context (default 128)")
    p.add_argument("--stride", type=int, help="causal-lm perplexity window stride (default half the context)")
    p.add_argument("--min-cosine", type=float, help="embedding budget: minimum cosine fidelity (default 0.99)")
    p.add_argument("--max-accuracy-drop", type=float, help="classification budget: accuracy points (default 1.0)")
    p.add_argument("--max-ppl-increase", type=float, help="causal-lm budget: perplexity increase in percent (default 2.0)")
    p.add_argument("--recommend-batch-size", type=int, help="batch size the recommendation is made at (default 1 if measured, else the first)")
    p.add_argument("--warmup", type=int, help="latency warm-up runs per cell (default 2)")
    p.add_argument("--min-iters", type=int, help="latency iterations per cell, at least (default 10)")
    p.add_argument("--min-seconds", type=float, help="latency seconds per cell, at least (default 0.5)")
    p.add_argument("--max-seconds", type=float, help="latency seconds per cell, at most (default 10)")
    p.add_argument("--out", help="report JSON path (default reports/<model>-<task>-<time>.json)")
    p.add_argument("--csv", help="also write a flat CSV (one row per variant x batch x seq)")
    p.add_argument("--json", action="store_true", help="print the report JSON instead of the table")
    p.set_defaults(func=cmd_evaluate)

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

    p = sub.add_parser("store", help="list or clear the model store")
    p.add_argument("--json", action="store_true")
    p.add_argument("--clear", action="store_true", help="delete every stored artifact")
    p.add_argument("--delete", metavar="KEY", help="delete one entry (key or unique prefix)")
    p.set_defaults(func=cmd_store)
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
    except Exception as err:  # a bug: show it
        import traceback

        traceback.print_exc()
        print(f"error: unexpected failure ({err.__class__.__name__}); this is a bug, please report it with the traceback above.", file=sys.stderr)
        return EXIT_BUG
