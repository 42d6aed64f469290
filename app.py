"""Quantization Lab: the dashboard frame (navigation, sidebar with hardware and store, ?run=<id> links).

    streamlit run app.py
"""

from __future__ import annotations

import os

import streamlit as st

from core.execution.pool import DASHBOARD_SIZE

# The dashboard's job queue keeps measuring workers started ahead of time (each used for one measurement, refilled
# between jobs): a warm "Measure again" then skips process start and imports. QLAB_WORKER_POOL=0 turns it off.
os.environ.setdefault("QLAB_WORKER_POOL", str(DASHBOARD_SIZE))

from core.access import identity
from core.storage import history, links
from ui.auth import gate, show_alone, sidebar_identity
from ui.shared import PAGES, error_line, guarded, init_state, machine, md, next_run_targets, open_run, policy, run_frame, show_error

st.set_page_config(page_title="Quantization Lab", page_icon=":material/compress:", layout="wide")
init_state()

# Sign-in (QLAB_AUTH=oidc): a signed-out visitor sees only the sign-in page, except through a link for anyone; a
# person from a domain the lab does not admit only the refusal. Either page is the app's only one in st.navigation
# (stopping before it would make Streamlit list every file in pages/ in the sidebar).
link_token = st.query_params.get("link")
access = gate(link_opens_without_sign_in=bool(link_token) and links.audience_of(link_token) == "anyone")
if access.alone is not None:
    show_alone(access.alone, access.title)
    st.stop()
person = access.person
link_visitor = person is None and identity.sign_in_required()   # signed out, holding a link for anyone: that run only

# ?link=<token> (a share link that can be withdrawn) or ?run=<id> opens a saved run on the Compare page
requested_run = st.query_params.get("run")
run_error, just_opened = None, False
if link_token and link_token != st.session_state.get("opened_token"):
    st.session_state["opened_token"] = link_token
    try:
        requested_run = links.resolve(link_token, signed_in=person is not None)
        history.load_run(requested_run)
        open_run(requested_run)
        st.session_state.setdefault("link_runs", []).append(requested_run)   # opened by a link: read-only here
        st.session_state["opened_link"] = requested_run   # the ?run= that Compare then puts in the address: already open
        just_opened = True
    except Exception as err:  # noqa: BLE001 - shown as one line below
        run_error, requested_run = err, None
elif requested_run and requested_run != st.session_state.get("opened_link"):
    st.session_state["opened_link"] = requested_run
    try:
        history.load_run(requested_run)
        if identity.sign_in_required() and (link_visitor or (not identity.may_act_on(history.run_owner(requested_run), person)
                                                            and requested_run not in links.shared_run_ids())):
            # with sign-in a run's own address opens it for its owner, an admin, or (once shared) a colleague;
            # a signed-out holder of a link for anyone gets that link's run and nothing else
            raise links.LinkError(f"Run '{requested_run[:8]}' is private to its owner; ask them for a share link.")
        open_run(requested_run)
        just_opened = True
    except Exception as err:  # noqa: BLE001 - shown as one line below
        run_error = err

# (a default page has no path of its own: Compare is one only for a link visitor, who sees nothing else, so that
# /compare?run=... is always a real address; a run asked for at the root is shown by switching to Compare below)
compare_page = st.Page(PAGES["compare"], title="Compare", icon=":material/monitoring:", default=link_visitor)
if link_visitor:   # a link for anyone opens its run, read-only, and nothing else of the lab
    pages = {"Shared run": [compare_page]}
else:
    pages = {
        "Set up": [
            st.Page(PAGES["data"], title="Data", icon=":material/dataset:", default=True),
            st.Page(PAGES["models"], title="Models & variants", icon=":material/tune:"),
            st.Page(PAGES["run"], title="Run", icon=":material/play_circle:"),
        ],
        "Results": [
            compare_page,
            st.Page(PAGES["weights"], title="Weights", icon=":material/bar_chart:"),
            st.Page(PAGES["playground"], title="Playground", icon=":material/chat:"),
            st.Page(PAGES["history"], title="History & share", icon=":material/history:"),
            st.Page(PAGES["store"], title="Store", icon=":material/inventory_2:"),
        ],
    }
nav = st.navigation(pages, expanded=True)
if just_opened and not link_visitor and nav.url_path == "":   # ?run= or ?link= at the root: show it
    st.switch_page(compare_page)


def sidebar() -> None:
    from core.serving.jobs import get_queue
    from core.storage.store import ModelStore

    pol = policy()
    with st.sidebar:
        if pol.hosted:
            st.badge("Hosted mode", icon=":material/public:", color="violet", help=pol.describe())
        info = machine()
        cpu = info["cpu"]
        st.markdown("**Hardware**")
        st.caption(f"{cpu['model']}  \n{cpu['arch']} · {cpu['logical_cores']} logical cores · devices: {', '.join(info['devices'])}")
        flags = cpu["flags"]
        if flags:
            st.markdown(" ".join(
                f":green-badge[{f}]" if ("vnni" in f or f.startswith("amx")) else f":gray-badge[{f}]" for f in flags
            ))
        notes = []
        if cpu["arch"].lower() in ("x86_64", "amd64") and not info["vnni"]:
            notes.append("no VNNI: int8 matmuls gain little over fp32")
        if not info["amx"]:
            notes.append("no AMX: bf16 gains little")
        if notes:
            st.caption("; ".join(notes) + ".")
        st.caption(f"Default quantized engine: `{info['engine']}`")
        from core.execution import ray_cluster

        if ray_cluster.configured_address():
            targets = next_run_targets()   # what the next run measures on, first visit included (Models & variants shows it chosen)
            st.caption(f":material/hub: Ray cluster at `{ray_cluster.configured_address()}`: measuring on "
                       + (", ".join(f"**{md(t)}**" for t in targets) if targets else "this machine")
                       + " (choose on Models & variants).")

        st.markdown("**Store**")
        store = ModelStore()
        entries = store.entries()
        total = store.total_bytes()  # the limit counts everything under the root
        limit = store.size_limit or 1
        st.progress(min(1.0, total / limit), text=f"{len(entries)} entries · {total / 2**30:.2f} of {limit / 2**30:.0f} GB")
        queue = get_queue()
        active = queue.active_jobs()
        holder = queue.machine_holder()
        if not active and holder and holder.get("pid") != os.getpid():
            st.caption(f":material/hourglass_top: another server process is running an evaluation ({md(holder.get('model'), 60)})")
        if active:
            running = [j for j in active if j["state"] == "running"]
            st.caption(f":material/hourglass_top: {len(running)} evaluation running, {len(active) - len(running)} waiting"
                       + (f" · {md(running[0]['config'].get('model'), 60)}" if running else ""))
        if st.session_state.get("current_run"):
            st.caption(f"Current run: `{st.session_state['current_run'][:8]}` (Compare)")


def follow_job() -> None:
    """The job this session follows: found again after a reload (?job=), kept in the address, polled in the sidebar
    on every page but Run (which shows it in detail)."""
    from core.serving.jobs import get_queue
    from ui import jobwatch

    queue = get_queue()
    jobwatch.restore(queue)
    jobwatch.keep_in_address()
    jobwatch.show_flash(error_line)
    if nav.url_path != "run":
        with st.sidebar:
            jobwatch.sidebar_watch(queue, open_run, md)


with guarded():
    sidebar_identity(person)
    if not link_visitor:
        sidebar()
        follow_job()
if run_error is not None:
    show_error(run_error)
run_frame(nav)
