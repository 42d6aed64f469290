"""Many people at once: real Chromium sessions against a real `streamlit run app.py`, running real evaluations.

    python benchmarks/load_sessions.py [--sessions 8] [--distinct 4] [--idle-s 30] [--store DIR] [--write-readme]

Phase 1: every session opens Run and presses "Measure again" on the default comparison (the sample data, MiniLM,
fp32 + dynamic-int8 + onnx-int8, Quick protocol) at the same moment: one evaluation is run and shared by all.
Phase 2: ``--distinct`` sessions each change the comparison on Models & variants (another batch size or sequence
length), come back to Run and press "Measure again": distinct comparisons, which queue one behind the other.

Recorded per session: seconds from the click to the page showing the result, and any refusal with its reason.
Recorded for the server process (psutil; the evaluations run in child processes, not counted): CPU while the jobs
run, and for ``--idle-s`` seconds after the last one ends with every session still open; evaluations run (runs
saved) and whether each session's run is one of them. The variants are built into the store first (not timed), so
the figures are about serving and measuring, not building. The tests (tests/test_load.py) assert on the same figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VARIANTS = "fp32,dynamic-int8,onnx-int8"
RESULT = re.compile(r"Finished in \d+ s|Opened the saved result|Comparison finished: run [0-9a-f]{8}")
START, END = "<!-- load:start -->", "<!-- load:end -->"
# phase 2: what each session changes on Models & variants, as (multiselect label, tag removed) -> a distinct comparison
CHANGES = [("Sequence lengths (tokens)", "64"), ("Sequence lengths (tokens)", "16"), ("Batch sizes", "8"), ("Batch sizes", "1")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra) -> dict:
    """This process's environment for a server or CLI of the lab on this machine alone: no cluster, not hosted, unless
    ``extra`` says so, with the dashboard's own worker pool (app.py's default)."""
    env = {k: v for k, v in os.environ.items() if k not in ("QLAB_RAY_ADDRESS", "QLAB_HOSTED", "QLAB_WORKER_POOL")}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    return env


def prebuild(store: Path) -> None:
    """Build the default comparison's variants into ``store`` (a quick CLI evaluation; it saves no run)."""
    env = clean_env(QLAB_CACHE_DIR=str(store))
    proc = subprocess.run([sys.executable, "-m", "core", "evaluate", "--task", "embedding", "--model", "minilm", "--variants", VARIANTS,
                    "--batch-sizes", "1", "--seq-lengths", "8", "--warmup", "0", "--min-iters", "1", "--min-seconds", "0", "--max-seconds", "1",
                    "--throughput-batch-size", "1"],
                   cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"building the variants failed (exit code {proc.returncode}): {proc.stderr.strip()[-600:]}")


@contextlib.contextmanager
def server(store: Path, extra_env: dict | None = None, args: list[str] | None = None, port: int | None = None):
    """``streamlit run app.py`` on a free loopback port (or ``port``) with ``store`` as its model store, with more
    ``args`` for streamlit; yields (url, pid, log path)."""
    port = port or free_port()
    env = clean_env(QLAB_CACHE_DIR=str(store), **(extra_env or {}))
    log_path = Path(tempfile.mkdtemp(prefix="qlab-load-")) / "streamlit.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
                                 "--server.address", "127.0.0.1", *(args or [])], cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited with code {proc.returncode}; see {log_path}")
                try:
                    with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                        if resp.read().strip() == b"ok":
                            break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError(f"streamlit did not become healthy in 90 s; see {log_path}") from None
                    time.sleep(0.5)
            yield url, proc.pid, log_path
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class CpuMeter:
    """CPU seconds of one process (with ``tree``: and of its descendants alive at both readings) between two readings."""

    def __init__(self, pid: int, tree: bool = False):
        import psutil

        self.proc, self.tree = psutil.Process(pid), tree
        self.mark()

    def _times(self) -> dict[int, float]:
        import psutil

        out = {}
        for proc in [self.proc, *(self.proc.children(recursive=True) if self.tree else [])]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
        return out

    def mark(self) -> None:
        self.t0, self.c0 = time.time(), self._times()

    def cores(self) -> float:
        """Mean cores used since the last mark."""
        used = sum(v - self.c0[pid] for pid, v in self._times().items() if pid in self.c0)
        return used / max(1e-6, time.time() - self.t0)


def saved_runs(store: Path) -> set[str]:
    runs = store / "runs"
    return {p.stem for p in runs.glob("*.json")} if runs.is_dir() else set()


def goto_page(page, label: str, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(label, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()


def remove_tag(page, widget_label: str, tag: str) -> None:
    widget = page.locator('[data-testid="stMultiSelect"]').filter(has_text=widget_label)
    widget.get_by_role("button", name=f"Remove {tag}", exact=True).click()
    widget.get_by_role("button", name=f"Remove {tag}", exact=True).wait_for(state="detached")


def result_text(page, old_runs: set[str] = frozenset()) -> str | None:
    """The page's "Finished in ... Run `abcd1234` is saved." line or finish toast, if it shows one; else, on Compare, a
    run it has open that is not one of ``old_runs`` (``?run=`` in its address: the finish toast is gone after a few
    seconds, the opened run stays)."""
    found = page.get_by_text(RESULT)
    if found.count():
        with contextlib.suppress(Exception):
            return found.first.inner_text(timeout=2000)
    opened = re.search(r"[?&]run=([0-9a-f]{8,})", page.url)
    if opened and not any(old.startswith(opened.group(1)[:8]) for old in old_runs):
        return f"Compare has run {opened.group(1)[:8]} open"
    return None


def wait_all(pages: list, clicked: dict, before: dict, timeout_s: float, old_runs: set[str] = frozenset()) -> dict:
    """Poll every page until it shows a result other than the one it showed ``before`` its click (a page may still show
    the previous job's) and than the runs saved before it (``old_runs``), or an error. Returns {"seconds": {i: click to
    result}, "run_ids": {i: 8-hex id}, "errors": ...}."""
    seen: dict[int, float | None] = {}
    run_ids: dict[int, str] = {}
    errors: dict[int, str] = {}
    deadline = time.time() + timeout_s
    while len(seen) < len(pages) and time.time() < deadline:
        for i, page in enumerate(pages):
            if i in seen:
                continue
            text = result_text(page, old_runs)
            if text and text != before.get(i):
                seen[i] = time.time() - clicked[i]
                match = re.search(r"[Rr]un `?([0-9a-f]{8})", text)
                run_ids[i] = match.group(1) if match else "?"
            elif "/compare" not in page.url and page.locator('[data-testid="stAlertContentError"]').count():
                # (on Compare a red box is a verdict on the run shown: e.g. outputs wrong at a timed shape)
                errors[i] = page.locator('[data-testid="stAlertContentError"]').first.inner_text()[:300]
                seen[i] = None
        time.sleep(0.25)
    return {"seconds": seen, "run_ids": run_ids, "errors": errors}


def press_and_follow(pages: list, phase: str, figures: dict, meter: CpuMeter, timeout_s: float, then=None,
                     old_runs: set[str] = frozenset()) -> None:
    """Every page presses "Measure again" (measured even if a run of the same comparison is saved), ``then`` runs, and
    every page is followed to its result: ``figures[phase + "_..."]`` get the seconds, run ids, errors, the pages that
    never showed a result, and the server's CPU meanwhile."""
    clicked, shown = {}, {i: result_text(page) for i, page in enumerate(pages)}
    meter.mark()
    for i, page in enumerate(pages):
        clicked[i] = time.time()
        page.get_by_role("button", name="Measure again").click()
    if then is not None:
        then()
    got = wait_all(pages, clicked, shown, timeout_s, old_runs)
    figures[f"{phase}_job_cores"] = meter.cores()
    figures[f"{phase}_run_ids"] = got["run_ids"]
    figures[f"{phase}_seconds"] = got["seconds"]
    figures[f"{phase}_errors"] = got["errors"]
    figures[f"{phase}_missing"] = {i: session_view(pages[i]) for i in range(len(pages)) if got["seconds"].get(i) is None}


def setup_line(page) -> str:
    """The Run page's line saying what will be measured (batch sizes x sequence lengths ...)."""
    text = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Batch sizes").first.inner_text()
    return next((line for line in text.splitlines() if line.startswith("Batch sizes")), text)


def session_view(page) -> str:
    """What a page shows (for a failure message): the main block's text, one line."""
    with contextlib.suppress(Exception):
        return page.url + " | " + page.locator('[data-testid="stMain"]').inner_text(timeout=5000)[:400].replace("\n", " | ")
    return "(page unreadable)"


def run_load(url: str, server_pid: int, store: Path, *, sessions: int = 8, distinct: int = 4, idle_s: float = 30.0,
             timeout_s: float = 300.0, say=print, figures: dict | None = None) -> dict:
    """Both phases against a running server; returns the figures (see the module docstring), filled into ``figures``
    as they come, so a caller still has the first phase's when the second fails."""
    from playwright.sync_api import sync_playwright

    from core.execution import pool

    figures = {} if figures is None else figures
    figures.update(sessions=sessions, distinct=distinct)
    meter = CpuMeter(server_pid)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(sessions)]
            pages = [c.new_page() for c in contexts]
            for page in pages:
                page.set_default_timeout(120_000)
            for page in pages:   # open Run in every session
                page.goto(url + "/run")
            for page in pages:
                page.get_by_role("button", name="Measure again").wait_for()
            meter.mark()
            time.sleep(5)
            figures["idle_before_cores"] = meter.cores()

            # phase 1: the same comparison from every session at once
            before = saved_runs(store)
            press_and_follow(pages, "phase1", figures, meter, timeout_s, old_runs=before)
            after1 = saved_runs(store)
            figures["phase1_runs_saved"] = len(after1 - before)
            say(f"phase 1: {sum(v is not None for v in figures['phase1_seconds'].values())}/{sessions} saw the result; "
                f"runs saved: {len(after1 - before)}")

            # phase 2: distinct comparisons, set up through Models & variants, then queued together
            chosen = pages[:distinct]
            for page, (label, tag) in zip(chosen, CHANGES):
                goto_page(page, "Models & variants", "Models & variants")
                remove_tag(page, label, tag)
                goto_page(page, "Run", "Run")
                page.get_by_role("button", name="Measure again").wait_for()
                figures.setdefault("phase2_setups", []).append(setup_line(page))
            where = ["run"] * distinct

            def wander() -> None:   # one follows its job from Compare, one reloads the tab (a new session, ?job= in the address)
                if distinct < 2:
                    return
                for page in chosen[:2]:   # the job is asked for (its id is in the address) before the page is left
                    page.wait_for_url(re.compile(r"[?&]job=[0-9a-f]{32}"))
                goto_page(chosen[0], "Compare", "Compare")
                chosen[1].reload()
                chosen[1].get_by_role("heading", name="Run", exact=True).wait_for()
                where[:2] = ["compare", "reloaded"]

            press_and_follow(chosen, "phase2", figures, meter, timeout_s + 60 * distinct, then=wander, old_runs=after1)
            figures["phase2_where"] = where
            after2 = saved_runs(store)
            figures["phase2_runs_saved"] = len(after2 - after1)
            figures["runs"] = {"phase1": sorted(after1 - before), "phase2": sorted(after2 - after1)}
            say(f"phase 2: {sum(v is not None for v in figures['phase2_seconds'].values())}/{distinct} saw their result; "
                f"runs saved: {len(after2 - after1)}")

            figures["pooled_workers"] = pool.served_count(store)   # measurements that started in a pre-started worker
            # idle: every session still open, nothing running, the worker pool refilled (its imports are not idle time)
            deadline = time.time() + 180
            while pool.ready_count(store) < pool.DASHBOARD_SIZE and time.time() < deadline:
                time.sleep(0.5)
            tree = CpuMeter(server_pid, tree=True)
            meter.mark()
            time.sleep(idle_s)
            figures["idle_after_cores"] = meter.cores()
            figures["idle_tree_cores"] = tree.cores()
            figures["idle_s"] = idle_s
            say(f"idle: server used {figures['idle_after_cores']:.3f} cores over {idle_s:.0f} s with {sessions} sessions open "
                f"({figures['idle_tree_cores']:.3f} with its job children and {pool.ready_count(store)} pooled workers)")
        finally:
            browser.close()
    return figures


def cpu_name() -> str:
    from core import env

    info = env.cpu_info()
    flags = [f for f in info.get("flags") or [] if "vnni" in f or f.startswith("amx") or f in ("avx512f", "avx2")] or ["no VNNI, AMX or AVX-512"]
    return f"{info.get('model')}, {info.get('logical_cores')} cores ({', '.join(flags)})"


def summary(fig: dict) -> str:
    def spread(seconds: dict) -> str:
        values = sorted(v for v in seconds.values() if v is not None)
        if not values:
            return "none"
        return f"median {values[len(values) // 2]:.0f} s, slowest {values[-1]:.0f} s"

    p1 = sum(v is not None for v in fig["phase1_seconds"].values())
    p2 = sum(v is not None for v in fig["phase2_seconds"].values())
    refused = len(fig["phase1_errors"]) + len(fig["phase2_errors"])
    return "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {cpu_name()}, with `benchmarks/load_sessions.py` (the same as `tests/test_load.py`): "
        f"{fig['sessions']} headless Chromium sessions against one `streamlit run app.py`, MiniLM {VARIANTS.replace(',', ' + ')}, Quick protocol, "
        "variants already in the store.",
        "",
        "| phase | sessions saw their result | click to result | evaluations run (runs saved) | server CPU while running |",
        "|---|---|---|---|---|",
        f"| {fig['sessions']} sessions ask the same comparison | {p1} of {fig['sessions']} | {spread(fig['phase1_seconds'])} | "
        f"{fig['phase1_runs_saved']} | {fig['phase1_job_cores']:.2f} cores |",
        f"| {fig['distinct']} sessions ask distinct comparisons (queued; one follows from Compare, one reloads its tab) | "
        f"{p2} of {fig['distinct']} | {spread(fig['phase2_seconds'])} | "
        f"{fig['phase2_runs_saved']} | {fig['phase2_job_cores']:.2f} cores |",
        "",
        f"Refusals: {refused}. Idle, all {fig['sessions']} sessions still open: the server used {fig['idle_after_cores']:.3f} cores over "
        f"{fig['idle_s']:.0f} s after the last job ended ({fig['idle_before_cores']:.3f} before the first click), "
        f"{fig['idle_tree_cores']:.3f} with its job children and pre-started workers. {fig['pooled_workers']} measurements started in a "
        "pre-started worker (the dashboard's pool).",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--distinct", type=int, default=4)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--store", help="model store to use (default: a fresh temporary one)")
    parser.add_argument("--write-readme", action="store_true", help="rewrite the load figures in docs/hosting.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="qlab-load-store-"))
    print(f"building {VARIANTS} into {store} (not timed) ...", file=sys.stderr)
    prebuild(store)
    with server(store) as (url, pid, log_path):
        fig = run_load(url, pid, store, sessions=args.sessions, distinct=args.distinct, idle_s=args.idle_s,
                       say=lambda m: print(m, file=sys.stderr))
    print(summary(fig))
    if args.write_readme:
        from _common import write_readme_section

        write_readme_section(ROOT / "docs" / "hosting.md", START, END, summary(fig))   # the marked section moved there from README.md
    ok = (all(v is not None for v in fig["phase1_seconds"].values()) and all(v is not None for v in fig["phase2_seconds"].values())
          and len(fig["phase1_seconds"]) == fig["sessions"] and len(fig["phase2_seconds"]) == fig["distinct"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
