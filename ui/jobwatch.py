"""Following a job from any page: the session's job id, kept in the address, and a small poller in the sidebar.

* ``watch(job_id)``: this session follows the job (its own or a shared one); the id also goes into the address
  (``?job=<id>``) so a reload of the browser tab follows it again (``restore``).
* ``sidebar_watch(...)``: on every page but Run (which has its own detailed panel) a fragment in the sidebar polls the
  job once a second while it is active. A poll is one status read (``JobQueue.status``: a dict copy under a lock).
  When the job ends the fragment reruns the whole page once: the finished run opens (``open_run``) and the timer is
  gone, because a full run registers the fragment without ``run_every`` when there is nothing left to poll.
* ``finished_once(snap)``: true the first time this session sees a job finished, so exactly one page run reacts
  to the end (opens the run, reruns) whichever poller saw it first.
"""

from __future__ import annotations

import re

import streamlit as st

from core.serving.jobs import FINISHED

JOB_PARAM = "job"
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
FLASH_KEY = "job_flash"


def watch(job_id: str | None, *, subscribed: bool = True) -> None:
    """Follow ``job_id`` in this session (``subscribed``: this session asked for it, so it may cancel its request)."""
    ss = st.session_state
    ss["job_id"] = job_id
    ss["job_subscribed"] = bool(job_id) and subscribed
    if job_id:
        st.query_params[JOB_PARAM] = job_id
    elif JOB_PARAM in st.query_params:
        del st.query_params[JOB_PARAM]


def restore(queue) -> None:
    """A reloaded tab (a new session) whose address names a job follows it again; a stale or forged id is dropped."""
    ss = st.session_state
    wanted = st.query_params.get(JOB_PARAM)
    if not wanted or wanted == ss.get("job_id"):
        return
    if _JOB_ID.match(wanted) and queue.status(wanted) is not None:
        watch(wanted, subscribed=False)
    else:
        del st.query_params[JOB_PARAM]


def keep_in_address() -> None:
    """Page switches drop the query string: put the followed, unfinished job back, so a reload still finds it."""
    job_id = st.session_state.get("job_id")
    if job_id and st.session_state.get("job_seen_finished") != job_id and st.query_params.get(JOB_PARAM) != job_id:
        st.query_params[JOB_PARAM] = job_id


def finished_once(snap: dict) -> bool:
    """True the first time this session sees this job finished (then the caller reacts: opens the run, reruns)."""
    ss = st.session_state
    if snap["state"] not in FINISHED or ss.get("job_seen_finished") == snap["id"]:
        return False
    ss["job_seen_finished"] = snap["id"]
    if JOB_PARAM in st.query_params:
        del st.query_params[JOB_PARAM]
    return True


def on_finish(snap: dict, open_run) -> None:
    """What every page does once when the followed job ends: open its run, and say so on the next page run."""
    if snap["state"] == "done" and snap.get("run_id"):
        open_run(snap["run_id"])
        st.session_state[FLASH_KEY] = ("done", f"Comparison finished: run {snap['run_id'][:8]} is saved and open on Compare.")
    elif snap["state"] == "failed":
        st.session_state[FLASH_KEY] = ("failed", snap.get("error") or "The evaluation failed.")
    else:
        st.session_state[FLASH_KEY] = ("cancelled", "The comparison was cancelled.")


def show_flash(error_line) -> None:
    """The toast saying how the followed job ended, on the page run after the end was seen."""
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        kind, text = flash
        icon = {"done": ":material/check_circle:", "failed": ":material/error:"}.get(kind, ":material/cancel:")
        st.toast(error_line(text) if kind == "failed" else text, icon=icon, duration="long")


def sidebar_watch(queue, open_run, md) -> None:
    """The sidebar's view of the followed job on pages other than Run (see the module docstring)."""
    ss = st.session_state
    job_id = ss.get("job_id")
    snap = queue.status(job_id) if job_id else None
    if snap is None or ss.get("job_seen_finished") == job_id:
        return
    active = snap["state"] not in FINISHED

    @st.fragment(run_every=1.0 if active else None)
    def poll():
        s = queue.status(job_id)
        if s is None:
            return
        if finished_once(s):
            on_finish(s, open_run)
            st.rerun(scope="app")
        if s["state"] == "queued":
            st.caption(f":material/schedule: Your comparison is queued ({s.get('ahead', 0)} ahead).")
        elif s["state"] == "waiting":
            st.caption(f":material/schedule: Your comparison waits: {md(s['message'], 80)}.")
        else:
            st.progress(min(1.0, float(s["fraction"])), text=f"Your comparison: {md(s['message'], 60)}")
        st.page_link("pages/run.py", label="Follow it on Run", icon=":material/play_circle:")

    poll()
