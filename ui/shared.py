"""What every page shares: session defaults, the comparison being set up, the current dataset, error boxes.

Pages never import torch: they ask ``core``. Anything a person can fix arrives as a QlabError and is shown as a
one-line ``st.error``; anything else is logged with its traceback on the server and shown as one line too.
Every message is shown without server paths (``hosting.redact``), and every user or imported string goes through
``md`` (``hosting.md``) before it meets markdown.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time
from pathlib import Path

import streamlit as st
from streamlit.errors import FragmentHandledException

from core.access import hosting
from core.errors import QlabError, first_line
from core.measure.bench import QUICK
from core.scenarios import DEFAULT as SCENARIO_DEFAULT
from core.scenarios import REGISTRY as SCENARIO_REGISTRY
from core.tasks import CAUSAL_LM, CLASSIFICATION, EMBEDDING, TASKS, Budget, all_tasks, find_task, get_task

log = logging.getLogger("qlab.ui")
md = hosting.md   # a user or imported string, escaped for st.markdown / st.info / st.caption

TASK_NAMES = {t.name: t.title for t in all_tasks()}   # the task picker's words, as each task declares them
BATCH_CHOICES = [1, 2, 4, 8, 16, 32, 64]
SEQ_CHOICES = [8, 16, 32, 64, 128, 256, 512]
PROMPT_CHOICES = [8, 16, 32, 64, 128, 256, 512]
SCENARIOS = {s.name: s.title for s in SCENARIO_REGISTRY.values()}   # core/scenarios: the radio's choices and words
MEASUREMENTS = {"quick": "Quick (a few iterations; for demos)", "standard": "Standard (≥10 iterations and ≥0.5 s per cell)"}
DEFAULT_VARIANTS = ["fp32", "dynamic-int8", "onnx-int8"]
UPLOAD_TYPES = ["csv", "tsv", "jsonl", "json", "txt"]


def budget_of(task: str | None) -> Budget:
    """The measure the quality budget of ``task`` is on (embedding's task for an unknown one), as picked on Models &
    variants (the task's default measure until then): its key, number input (label, range, step, format, help) and words."""
    t = find_task(task, default=EMBEDDING)
    return t.budget_by_key(st.session_state.get(f"bm_{t.name}") or "") or t.budget


PAGES = {
    "data": "pages/data.py", "models": "pages/models.py", "run": "pages/run.py", "compare": "pages/compare.py",
    "weights": "pages/weights.py", "playground": "pages/playground.py", "history": "pages/history.py", "store": "pages/store.py",
}


# -- errors ---------------------------------------------------------------------------------------
def error_line(err: BaseException | str) -> str:
    """The one line a person sees for an error: no server paths, no markdown from the message."""
    if isinstance(err, QlabError) or isinstance(err, str):
        return md(hosting.redact(str(err)), limit=600)
    first = hosting.redact(first_line(err, 160))
    return (f"Something went wrong ({err.__class__.__name__}{md(': ' + first) if first else ''}); the details are in the server log. "
            "Try again, or report it with the steps that led here.")


def show_error(err: BaseException | str) -> None:
    if isinstance(err, BaseException) and not isinstance(err, QlabError):
        log.error("unexpected error in the dashboard", exc_info=err)
    st.error(error_line(err), icon=":material/error:")


@contextlib.contextmanager
def guarded():
    """Show any error raised inside as one line (never a traceback); Streamlit's own control flow passes through."""
    try:
        yield
    except FragmentHandledException:
        raise
    except Exception as err:  # noqa: BLE001 - the page must not show a traceback
        show_error(err)


FRAME_KEY = "_qlab_frame_running"
APP_PATH = Path(__file__).resolve().parent.parent / "app.py"


def ensure_navigation_mode() -> None:
    """Run every page through app.py's st.navigation, even on a server's very first request.

    Streamlit decides per process whether an app uses the old ``pages/`` folder mode: it is on while a ``pages/``
    folder exists and until some script run calls ``st.navigation``. So the first request of a fresh server for a
    page URL (``/compare?run=...``) runs ``pages/compare.py`` alone, without the frame (AppTest does this on every
    run). A page that finds itself running without app.py around it switches that mode off, then reruns (a new
    session) or runs app.py in its place in the same script run (so a button click is not lost to a rerun);
    app.py routes to this same page.
    """
    if st.session_state.get(FRAME_KEY):
        return
    import runpy

    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    if FRAME_KEY not in st.session_state:
        st.rerun()  # a new session (a fresh server's first request): nothing to lose, and the URL resolves cleanly
    runpy.run_path(str(APP_PATH), run_name="__main__")
    st.stop()


def run_frame(nav) -> None:
    """app.py: run the selected page, marked as running inside the frame."""
    st.session_state[FRAME_KEY] = True
    try:
        nav.run()
    finally:
        st.session_state[FRAME_KEY] = False


def run_page(main) -> None:
    ensure_navigation_mode()
    with guarded():
        main()


# -- session defaults -------------------------------------------------------------------------------
def init_state() -> None:
    ss = st.session_state
    ss.setdefault("data_source", "sample")      # "sample" | "upload"
    ss.setdefault("upload", None)               # {"name", "bytes", "sha", "file_id", "task", "rows", "columns"}
    ss.setdefault("upload_error", None)         # {"file_id", "message"}
    ss.setdefault("job_id", None)
    ss.setdefault("current_run", None)
    ss.setdefault("my_runs", [])
    ss.setdefault("m_kind", "bundled")
    ss.setdefault("m_bundled", "minilm")
    ss.setdefault("m_hub", "")
    ss.setdefault("m_local", "")
    ss.setdefault("m_task", EMBEDDING)
    ss.setdefault("v_variants", list(DEFAULT_VARIANTS))
    ss.setdefault("v_extra", "")
    ss.setdefault("hw_threads", 0)
    ss.setdefault("hw_device", "cpu")
    ss.setdefault("hw_engine", default_engine())
    ss.setdefault("hw_batches", [1, 8])
    ss.setdefault("hw_seqs", [16, 64])
    ss.setdefault("hw_scenario", SCENARIO_DEFAULT)
    ss.setdefault("hw_prompts", [32, 128])
    ss.setdefault("hw_new_tokens", 32)
    ss.setdefault("hw_maxlen", 128)
    ss.setdefault("hw_calibration", "sample")
    ss.setdefault("hw_measure", "quick")
    ss.setdefault("hw_targets", [])            # none picked yet: next_run_targets() says where the next run measures
    for t in all_tasks():
        ss.setdefault(f"bm_{t.name}", t.budget.key)      # the measure the task's budget is on
        for b in t.all_budgets:
            ss.setdefault(f"b_{b.key}", float(b.default))


@st.cache_resource(show_spinner=False)
def default_engine() -> str:
    from core.env import default_quant_engine

    return default_quant_engine()


@st.cache_resource(show_spinner=False)
def machine() -> dict:
    from core import env

    info = env.cpu_info()
    return {"cpu": info, "devices": env.devices(), "engine": env.default_quant_engine(), "vnni": env.has_vnni(), "amx": env.has_amx()}


SWEEP_WIDGETS = {"seq_lengths": "hw_seqs", "prompt_lengths": "hw_prompts"}   # a scenario's swept setting -> its widget on Models & variants


def scenarios_for(task: str) -> list[str]:
    """The scenarios ``task`` can be measured in (the radio on Models & variants shows when there is a choice)."""
    return [s.name for s in SCENARIO_REGISTRY.values() if not s.unavailable_reason(get_task(task))]


def chosen_scenario(task: str):
    """The scenario picked on Models & variants, where the task can run it (else the default: latency)."""
    scenario = SCENARIO_REGISTRY.get(st.session_state.get("hw_scenario") or SCENARIO_DEFAULT, SCENARIO_REGISTRY[SCENARIO_DEFAULT])
    return SCENARIO_REGISTRY[SCENARIO_DEFAULT] if scenario.unavailable_reason(get_task(task)) else scenario


def policy() -> hosting.Policy:
    return hosting.policy()


@st.cache_data(show_spinner="Asking the cluster for its machines...", ttl=30, max_entries=4)
def _cluster_listing(address: str) -> tuple[list[dict], str | None]:
    """The cluster's targets, listed by ``python -m core hardware --json`` in a subprocess (Ray never joins the
    web server's process); (rows, None), or ([], one-line error)."""
    import json as _json
    import subprocess
    import sys

    from core.execution.local import project_env

    try:
        proc = subprocess.run([sys.executable, "-m", "core", "hardware", "--json"], capture_output=True, text=True, timeout=90,
                              env=project_env({"QLAB_RAY_ADDRESS": address}))
    except subprocess.TimeoutExpired:
        return [], f"The Ray cluster at {address} did not list its machines within 90 s."
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        return [], (lines[-1].removeprefix("error: ") if lines else f"Listing the cluster's machines failed (exit code {proc.returncode}).")
    return _json.loads(proc.stdout), None


def hardware_targets() -> tuple[list[dict], str | None]:
    """(targets the visitor may pick, error): this machine alone, or the cluster's nodes when QLAB_RAY_ADDRESS is set."""
    from core.execution import ray_cluster
    from core.execution.hardware import LOCAL_ID, local_target

    address = ray_cluster.configured_address()
    if not address:
        return [local_target()], None
    rows, error = _cluster_listing(address)
    allowed = hosting.allowed_hardware()
    if allowed is not None:
        rows = [r for r in rows if r["id"] in allowed or r["name"] in allowed or (r.get("this_machine") and LOCAL_ID in allowed)]
    return rows, error


def default_targets(rows: list[dict]) -> list[str]:
    """Where a comparison measures until the visitor picks on Models & variants: this machine's node, else the first
    reachable target (``rows`` as ``hardware_targets`` lists them); [] when none is reachable."""
    alive = [r for r in rows if r.get("alive")]
    here = next((r for r in alive if r.get("this_machine")), alive[0] if alive else None)
    return [here["id"]] if here else []


def targets_for(rows: list[dict], picked: list[str] | None) -> list[str]:
    """The targets a run measures on: those ``picked`` that ``rows`` still offers and reach, else ``default_targets``."""
    alive = {r["id"] for r in rows if r.get("alive")}
    kept = [t for t in picked or [] if t in alive]
    return kept or default_targets(rows)


def next_run_targets() -> list[str]:
    """The target ids the next run measures on, the one answer for the sidebar, Models & variants and Run
    ([] = this machine through the local launcher: no cluster configured, or none of its machines could be listed).

    With a cluster (QLAB_RAY_ADDRESS) that is the visitor's pick on Models & variants, else ``default_targets``, so a
    first visit names the node the Models page will show chosen. When the listing fails, a pick is kept as it is (the
    job checks it against the cluster's nodes and says why it cannot run)."""
    from core.execution import ray_cluster

    if not ray_cluster.configured_address():
        return []
    picked = [t for t in st.session_state.get("hw_targets") or [] if t]
    rows, error = hardware_targets()
    if error and not rows:
        return picked
    return targets_for(rows, picked)


def chosen_hardware() -> list[str]:
    """The target ids of the comparison being set up (``next_run_targets``; [] = this machine, local launcher)."""
    return next_run_targets()


def remember_run(run_id: str) -> None:
    runs = st.session_state.setdefault("my_runs", [])
    if run_id and run_id not in runs:
        runs.append(run_id)


def person():
    """The signed-in person (core.access.identity.Person; None when sign-in is off)."""
    from ui.auth import current_person

    return current_person()


def is_admin() -> bool:
    from core.access.identity import is_admin as admin

    return admin(person())


def opened_by_link(run_id: str | None) -> bool:
    """This session opened ``run_id`` through a share link and does not own it: it may only read it."""
    if not run_id or run_id not in (st.session_state.get("link_runs") or []):
        return False
    from core.access.identity import may_act_on
    from core.storage import history

    who = person()
    return not (who is not None and may_act_on(history.run_owner(run_id), who))


def owner_email() -> str | None:
    who = person()
    return who.email if who else None


def owner() -> str:
    """Who owns what this session creates: the signed-in person (sign-in on), else a hash of a secret kept in the
    session. Runs record it; hosted or with sign-in, only it (or an admin) may delete them. A link never grants it."""
    who = person()
    if who is not None:
        return who.owner
    token = st.session_state.get("_owner_token")
    if not token:
        token = st.session_state["_owner_token"] = secrets.token_hex(16)
    return hosting.owner_id(token)


def visitor() -> str:
    """Who counts as one visitor for the per-visitor limits: the signed-in person (sign-in on), else
    hosting.visitor_key: the client address, else the session."""
    who = person()
    if who is not None:
        return who.owner
    ip = forwarded = None
    with contextlib.suppress(Exception):
        ip = st.context.ip_address
    with contextlib.suppress(Exception):
        forwarded = st.context.headers.get("X-Forwarded-For")
    session = st.session_state.get("_visitor_session")
    if not session:
        session = st.session_state["_visitor_session"] = secrets.token_hex(8)
    return hosting.visitor_key(ip, session, forwarded)


# -- the model being compared -------------------------------------------------------------------
def model_name() -> str:
    ss = st.session_state
    kind = ss.get("m_kind", "bundled")
    if kind == "hub":
        return (ss.get("m_hub") or "").strip()
    if kind == "local":
        return (ss.get("m_local") or "").strip()
    return ss.get("m_bundled") or "minilm"


def model_task() -> str:
    ss = st.session_state
    if ss.get("m_kind", "bundled") == "bundled":
        from core.bundled import BUNDLED

        model = BUNDLED.get(ss.get("m_bundled") or "minilm")
        return model.task if model else EMBEDDING
    task = ss.get("m_task")
    return task if task in TASKS else EMBEDDING


def variant_specs(strict: bool = True) -> list[str]:
    """The variant specs chosen on the Models page (parameters applied), plus any typed extra specs (``strict``: an extra
    spec not in the accepted form raises a one-line QlabError; otherwise it is left out)."""
    from core.recipes import RECIPES

    ss = st.session_state
    specs = []
    for name in ss.get("v_variants") or []:
        recipe = RECIPES.get(name)
        if recipe is None:
            continue
        parts = [name]
        for p in recipe.params:
            value = ss.get("hw_engine") if p.name == "engine" else ss.get(f"p_{name}_{p.name}")
            value = str(value).strip() if value is not None else None
            default = recipe.defaults()[p.name]
            offered = p.options()
            if value and value != default and (not offered or value in offered):
                parts.append(f"{p.name}={value}")
        specs.append(":".join(parts))
    try:
        extras = hosting.parse_extra_specs(ss.get("v_extra"))   # one-line QlabError unless in the accepted form
    except QlabError:
        if strict:
            raise
        extras = []
    for extra in extras:
        if extra not in specs:
            specs.append(extra)
    return specs


def budget_value(task: str) -> float:
    """The quality budget chosen on Models & variants for ``task`` (the default until changed)."""
    spec = budget_of(task)
    try:
        value = float(st.session_state.get(f"b_{spec.key}"))
    except (TypeError, ValueError):
        value = float(spec.default)
    return min(max(value, spec.min_value), spec.max_value)


def recommend_batch(batch_sizes: list[int]) -> int:
    """The batch size the recommendation is made at: the one chosen on Models & variants if it is measured, else 1 or the first."""
    from core.reporting.recommend import default_batch_size

    chosen = st.session_state.get("hw_rec_batch")
    return int(chosen) if chosen in batch_sizes else default_batch_size(batch_sizes)


def current_config(strict: bool = True) -> dict:
    """The comparison as EvalConfig fields (without the data, which travels as bytes); ``strict`` as in variant_specs."""
    ss = st.session_state
    pol = policy()
    threads = int(ss.get("hw_threads") or 0) or None
    task = model_task()
    batches = sorted(int(b) for b in ss.get("hw_batches") or [1])
    config = {
        "task": task,
        "model": model_name(),
        "variants": variant_specs(strict),
        "batch_sizes": batches,
        "seq_lengths": sorted(int(s) for s in ss.get("hw_seqs") or [16]),
        "threads": threads,
        "device": ss.get("hw_device") or "cpu",
        "max_length": int(ss.get("hw_maxlen") or 128),
        "allow_local": pol.allow_local,
    }
    scenario = chosen_scenario(task)
    if scenario.name != SCENARIO_DEFAULT:   # only then, so a latency comparison keeps its saved-run key
        config.update(scenario=scenario.name, prompt_lengths=sorted(int(p) for p in ss.get("hw_prompts") or [32]),
                      new_tokens=int(ss.get("hw_new_tokens") or 32))
    if ss.get("hw_calibration", "sample") != "sample":   # only then, so an unchanged comparison keeps its saved-run key
        config["calibration"] = ss["hw_calibration"]
    targets = chosen_hardware()
    if targets:   # only when a cluster is in use, so a one-machine comparison keeps its saved-run key
        config["hardware"] = targets
    if ss.get("hw_measure", "quick") == "quick":
        config["protocol"] = QUICK.to_dict()
    # the recommendation: only what differs from the engine's defaults, so an unchanged comparison keeps its saved result
    spec = budget_of(task)
    budget = budget_value(task)
    if spec is not find_task(task, default=EMBEDDING).budget or abs(budget - float(spec.default)) > 1e-12:
        config["budgets"] = {spec.key: budget}
    from core.reporting.recommend import default_batch_size

    rec_batch = recommend_batch(batches)
    if rec_batch != default_batch_size(batches):
        config["recommend_batch_size"] = rec_batch
    return config


# -- data -----------------------------------------------------------------------------------------
def inspect_upload(name: str, blob: bytes) -> dict:
    """Check an uploaded file and detect its task. Returns the upload record; raises QlabError (one line)."""
    from core.inputs import data as data_mod

    hosting.check_upload_size(name, len(blob))
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix and suffix not in UPLOAD_TYPES:
        raise QlabError(f"'{name}' is a .{suffix} file; upload CSV, TSV, JSONL or TXT (UTF-8 text).")
    order = [CAUSAL_LM, EMBEDDING] if suffix == "txt" else [CLASSIFICATION, EMBEDDING, CAUSAL_LM]
    errors: dict[str, QlabError] = {}
    dataset = None
    for task in order:
        try:
            dataset = data_mod.load_dataset(blob, task, name=name, max_bytes=policy().max_upload_bytes)
            break
        except QlabError as err:
            errors[task] = err
    if dataset is None:
        raise errors.get(EMBEDDING) or next(iter(errors.values()))
    detected = data_mod.detect_task(dataset.columns) or dataset.task
    if detected != dataset.task:
        with contextlib.suppress(QlabError):
            dataset = data_mod.load_dataset(blob, detected, name=name, max_bytes=policy().max_upload_bytes)
    check_dataset_limits(dataset)
    return {"name": name, "bytes": blob, "sha": hashlib.sha256(blob).hexdigest(), "task": dataset.task, "rows": dataset.rows,
            "columns": list(dataset.columns), "loaded": time.time()}


def check_dataset_limits(dataset) -> None:
    """Rows and tokens of a dataset against this deployment's limits (one-line QlabError)."""
    from core.inputs import data as data_mod

    pol = policy()
    hosting.check_dataset_size(dataset.name, dataset.rows, None, pol)
    if pol.max_tokens:
        hosting.check_dataset_size(dataset.name, dataset.rows, data_mod.count_tokens(dataset, pol.max_tokens), pol)


def dataset_for(task: str):
    """The dataset a run of ``task`` would use (the upload parsed for that task, or the task's sample)."""
    from core.inputs import data as data_mod

    up = st.session_state.get("upload")
    if st.session_state.get("data_source") == "upload" and up:
        return data_mod.load_dataset(up["bytes"], task, name=up["name"], max_bytes=policy().max_upload_bytes)
    return data_mod.load_dataset(data_mod.sample_path(task), task)


def data_bytes() -> tuple[bytes | None, str | None]:
    up = st.session_state.get("upload")
    if st.session_state.get("data_source") == "upload" and up:
        return up["bytes"], up["name"]
    return None, None


def data_label() -> str:
    up = st.session_state.get("upload")
    if st.session_state.get("data_source") == "upload" and up:
        return f"{up['name']} (uploaded, {up['rows']} rows)"
    return f"sample data for {model_task()}"


def preview_frame(dataset, limit: int = 20):
    import pandas as pd

    return pd.DataFrame(get_task(dataset.task).preview_rows(dataset, limit))


# -- background builds (Playground, Weights) -------------------------------------------------------------
def build_panel(queue, job_id: str, what: str = "Building") -> None:
    """A build job's state, refreshed every second while it runs; reruns the page once when it finishes."""
    from core.serving.jobs import FINISHED

    snap = queue.status(job_id)
    active = snap is not None and snap["state"] not in FINISHED

    @st.fragment(run_every=1.0 if active else None)
    def panel():
        s = queue.status(job_id)
        if s is None:
            return
        if s["state"] in ("queued", "waiting"):
            st.info(f"Build queued behind {s.get('ahead', 0)} job(s): {md(hosting.redact(s['message']))}", icon=":material/schedule:")
        elif s["state"] == "running":
            st.progress(min(1.0, s["fraction"]), text=f"{what} in the background: {md(hosting.redact(s['message']))}")
        elif s["state"] == "failed":
            st.error(error_line(s.get("error") or "The build failed."), icon=":material/error:")
        elif s["state"] == "cancelled":
            st.warning("Build cancelled.")
        if s["state"] in FINISHED and active:
            st.rerun()

    panel()


# -- runs -----------------------------------------------------------------------------------------
def load_current_report():
    """The report shown on Compare: the current run of this session (or None)."""
    from core.storage import history

    run_id = st.session_state.get("current_run")
    if not run_id:
        return None
    return history.load_run(run_id)


def open_run(run_id: str) -> None:
    st.session_state["current_run"] = run_id
    remember_run(run_id)


def fmt_age(ts: float | None) -> str:
    if not ts:
        return ""
    s = max(0, time.time() - float(ts))
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.0f} h ago"
    return f"{s / 86400:.0f} days ago"
