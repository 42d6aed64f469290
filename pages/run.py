"""Run: start the comparison, follow it live per variant and phase, cancel it. The work runs in core.serving.jobs."""

from __future__ import annotations

import json
import time

import streamlit as st

from core.scenarios import get_scenario
from core.serving.jobs import FINISHED, get_queue
from core.storage import history
from ui.jobwatch import finished_once, on_finish, watch
from ui.shared import (
    MEASUREMENTS,
    SWEEP_WIDGETS,
    budget_of,
    budget_value,
    current_config,
    data_bytes,
    data_label,
    error_line,
    is_admin,
    md,
    open_run,
    owner,
    owner_email,
    person,
    policy,
    recommend_batch,
    run_page,
    show_error,
    visitor,
)


def may_cancel(snap: dict) -> bool:
    """With sign-in, only the job's owner or an admin may cancel it (another person who asked for the same
    comparison drops only their own request); without it, any session that asked for it."""
    if person() is None:
        return True
    return is_admin() or snap.get("owner") in (None, owner()) or snap.get("subscribers", 1) > 1


PHASES = ["build", "load", "quality", "latency"]
PHASE_WORDS = {"build": "build", "load": "load", "quality": "quality", "latency": "latency"}


@st.cache_data(show_spinner=False, ttl=60, max_entries=32)
def _check(config_json: str, data_sha: str | None, _blob: bytes | None, data_name: str | None) -> tuple[str | None, list[str]]:
    """(error or None, canonical variant labels): the engine's own fast validation, cached per config and data."""
    from core.engine.evaluate import EvalConfig, validate
    from core.errors import QlabError
    from core.recipes import expand
    from core.serving.playground import hub_not_downloaded

    config = json.loads(config_json)
    config.pop("hardware", None)   # checked by the job against the cluster's current nodes
    try:
        if hub_not_downloaded(config["model"]):
            # checking the model would download it inside this page: check the rest, the job fetches the model
            from core.inputs import data as data_mod

            labels = expand(config["variants"], config["task"], config["device"])
            if _blob is not None:
                data_mod.load_dataset(_blob, config["task"], name=data_name)
            return None, labels
        clean = validate(EvalConfig(**config, data=data_name if _blob is not None else None, data_bytes=_blob))
    except QlabError as err:
        return str(err), []
    return None, list(clean.variants)


def _limits_error(variants: list[str], pol) -> str | None:
    """The hosted limits on variants (count, accepted form), before anything is checked or queued."""
    from core.access import hosting
    from core.errors import QlabError

    try:
        hosting.check_variants(variants, pol)
    except QlabError as err:
        return str(err)
    return None


def phase_line(slot: dict) -> str:
    seen, current = slot.get("phases", []), slot.get("phase")
    parts = []
    for phase in PHASES:
        if current == "done" or (phase in seen and phase != current):
            parts.append(f":green[:material/check_circle: {PHASE_WORDS[phase]}]")
        elif phase == current:
            parts.append(f":blue[**:material/progress_activity: {PHASE_WORDS[phase]}**]")
        elif phase == "build" and any(p in seen for p in ("load", "quality", "latency")):
            parts.append(":gray[:material/inventory_2: stored]")
        else:
            parts.append(f":gray[:material/radio_button_unchecked: {PHASE_WORDS[phase]}]")
    return " &nbsp; ".join(parts)


def render_status(snap: dict) -> None:
    state = snap["state"]
    elapsed = (snap.get("finished") or time.time()) - (snap.get("started") or snap["created"])
    if state == "queued":
        ahead = snap.get("ahead", 0)
        st.info(f"Queued: {ahead} evaluation{'s' if ahead != 1 else ''} ahead of yours on this machine. One runs at a time so timings are not disturbed.",
                icon=":material/schedule:")
    elif state == "waiting":
        st.info(f"Waiting: {md(snap['message'])}. Yours starts as soon as it finishes.", icon=":material/schedule:")
    elif state == "running":
        st.progress(min(1.0, snap["fraction"]), text=f"Running for {elapsed:.0f} s: {md(snap['message'])}")
    if snap.get("subscribers", 1) > 1 and state in ("queued", "waiting", "running"):
        st.caption(f":material/group: {snap['subscribers']} requests share this job (the same comparison asked from another tab).")
    names = list(snap["variants"])
    order = ["fp32"] + [v for v in snap["config"].get("variants", []) if v != "fp32"]
    for v in order:
        if v not in names:
            names.append(v)
    if state in ("running", "done", "failed", "cancelled") and names:
        for name in names:
            slot = snap["variants"].get(name, {"phases": []})
            c1, c2, c3 = st.columns([2, 4, 3])
            label = name if name in order or " · " in name else f"{name} (model)"
            c1.markdown(f"**{md(label)}**")
            c2.markdown(phase_line(slot) if slot.get("phases") else ":gray[waiting]")
            frac = float(slot.get("fraction") or 0.0)
            c3.progress(min(1.0, max(0.0, frac)), text=md((slot.get("message") or "")[:60]))


def main() -> None:
    ss = st.session_state
    queue = get_queue()
    st.title("Run")
    try:
        config = current_config()
    except Exception as err:  # noqa: BLE001 - e.g. an extra variant spec not in the accepted form: one line, nothing to run
        show_error(err)
        st.page_link("pages/models.py", label="Fix it on Models & variants", icon=":material/tune:")
        return
    blob, name = data_bytes()
    pol = policy()

    st.markdown(
        f"**{md(config['model']) or '(no model)'}** ({config['task']}) on **{md(data_label())}**  \n"
        f"Variants: {', '.join(md(v) for v in config['variants']) or '(none)'}  \n"
        + get_scenario(config.get("scenario")).setup_words(config) + " · "
        + f"threads {config['threads'] or 'default'} · {config['device']} · "
        f"{MEASUREMENTS['quick' if config.get('protocol') else 'standard']}  \n"
        + (f"Hardware targets: {', '.join(f'**{t}**' for t in config['hardware'])} (each measures on its own machine, side by side)  \n"
           if config.get("hardware") else "")
        + ("Static int8 calibrates on this run's own texts (the first 64)  \n" if config.get("calibration") == "data" else "")
        + f"Recommendation: the fastest variant at batch {recommend_batch(config['batch_sizes'])} with "
        f"{budget_of(config['task']).words(budget_value(config['task']))}"
    )
    st.caption("Change these on Data and Models & variants.")
    error, labels = (None, [])
    if not config["model"]:
        error = "No model chosen: pick one on Models & variants."
    elif not config["variants"]:
        error = "No variants chosen: pick at least one on Models & variants (fp32 plus a compressed one)."
    elif not ss.get("hw_batches") or not ss.get(SWEEP_WIDGETS[get_scenario(config.get("scenario")).sweep]):
        error = f"No batch sizes or {get_scenario(config.get('scenario')).sweep_words} chosen: pick at least one of each on Models & variants."
    else:
        error = _limits_error(config["variants"], pol)
        if not error:
            cfg_json = json.dumps(config, sort_keys=True)
            error, labels = _check(cfg_json, history.digest_bytes(blob), blob, name)
    if error:
        st.error(error_line(error), icon=":material/error:")

    job_id = ss.get("job_id")
    snap = queue.status(job_id) if job_id else None
    active = snap is not None and snap["state"] not in FINISHED

    c1, c2, _ = st.columns([2, 2, 3])
    start = c1.button("Run comparison", type="primary", icon=":material/play_arrow:", disabled=bool(error) or active, key="run_start")
    again = c2.button("Measure again", icon=":material/refresh:", disabled=bool(error) or active, key="run_again",
                      help="Ignore the saved result of this exact comparison and measure it again.")
    if start or again:
        try:
            job = queue.submit(config, data_bytes=blob, data_name=name, force=bool(again), visitor=visitor(), owner=owner(), owner_email=owner_email())
        except Exception as err:  # noqa: BLE001
            show_error(err)
            return
        watch(job.id)
        if job.state == "done" and job.run_id:
            finished_once(queue.status(job.id))
            open_run(job.run_id)
            st.toast("Same comparison already measured on this machine: opened the saved result.", icon=":material/bolt:")
        st.rerun()

    if job_id:
        progress_panel(queue, job_id, active)
    else:
        st.info("Nothing run yet in this session. Results of a comparison are saved; asking the same one again opens them at once.",
                icon=":material/info:")
    if pol.hosted:
        st.caption(pol.describe())


def progress_panel(queue, job_id: str, active: bool) -> None:
    """The followed job, polled once a second while it is active (a poll is one status read). The first poll that sees
    it end opens the run and reruns the page once, which registers the panel without a timer."""
    ss = st.session_state

    @st.fragment(run_every=1.0 if active else None)
    def panel():
        snap = queue.status(job_id)
        if snap is None:
            st.info("The job is gone (the server restarted); run the comparison again.")
            return
        if finished_once(snap):
            on_finish(snap, open_run)
            st.rerun(scope="app")
        render_status(snap)
        if snap["state"] not in FINISHED:
            if ss.get("job_subscribed") and may_cancel(snap) and st.button("Cancel", icon=":material/stop_circle:", key="run_cancel",
                                                      help="Stop this comparison (when other tabs asked for the same one, only your request is dropped)."):
                shared = snap.get("subscribers", 1) > 1
                queue.cancel(job_id, by=owner(), email=owner_email(), admin=is_admin())
                if shared:   # the others' job goes on: stop following it here
                    watch(None)
                st.rerun(scope="app")
            return
        if snap["state"] == "done" and snap.get("run_id"):
            took = (snap["finished"] - snap["started"]) if snap.get("started") else 0
            st.success(("Opened the saved result of this exact comparison (instant)." if snap["cached"]
                        else f"Finished in {took:.0f} s.") + f" Run `{snap['run_id'][:8]}` is saved.", icon=":material/check_circle:")
            st.page_link("pages/compare.py", label="See the comparison", icon=":material/monitoring:")
        elif snap["state"] == "failed":
            st.error(error_line(snap.get("error") or "The evaluation failed."), icon=":material/error:")
        elif snap["state"] == "cancelled":
            st.warning("Cancelled. Nothing was saved; variants already built stay in the store.", icon=":material/cancel:")

    panel()


run_page(main)
