"""History & share: saved runs, ?run=<id> links, JSON / CSV / HTML exports, importing a colleague's report."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from core.access import hosting
from core.charts.cross_run import cross_run_figure
from core.charts.html_report import export_html
from core.charts.report_access import quality_spec, reference_rows
from core.storage import history, links
from ui.shared import (
    guarded,
    is_admin,
    md,
    open_run,
    opened_by_link,
    owner,
    owner_email,
    person,
    policy,
    remember_run,
    run_page,
    show_error,
    visitor,
)


@st.cache_data(show_spinner=False, max_entries=8)
def _html(run_id: str) -> str:
    return export_html(history.load_run(run_id))


def lab_url() -> str:
    """This lab's address without a page or query ("" when there is no browser context, as in tests)."""
    base = ""
    try:
        base = (st.context.url or "").split("?")[0]
    except Exception:  # noqa: BLE001 - no browser context (tests)
        base = ""
    for suffix in ("/history", "/compare"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base.rstrip("/")


def share_url(run_id: str) -> str:
    base = lab_url()
    return f"{base}/compare?run={run_id}" if base else f"?run={run_id}"


def share_links(run_id: str) -> None:
    """The run's share links: its owner makes one for an audience and can revoke it; a revoked link opens nothing."""
    who = person()
    mine = history.run_owner(run_id) == owner() or is_admin()
    live = links.links_for(run_id)
    if not mine:
        st.caption(":material/lock: Only the run's owner can share it or withdraw its links.")
        return
    audiences = list(links.AUDIENCES) if who is not None else ["anyone"]   # without sign-in nobody is "signed in"
    c1, c2 = st.columns([2, 1])
    audience = c1.selectbox("Share with", audiences, format_func=links.AUDIENCES.get, key=f"share_aud_{run_id}")
    if c2.button("Create link", icon=":material/link:", key=f"share_make_{run_id}"):
        links.create(run_id, owner(), audience, email=owner_email())
        st.rerun()
    for link in live:
        c1, c2 = st.columns([4, 1])
        c1.code(link_url(link["token"]), language=None)
        c1.caption(f"Opens for {links.AUDIENCES.get(link['audience'], link['audience'])}, read-only.")
        if c2.button("Revoke", icon=":material/link_off:", key=f"share_revoke_{link['token'][:12]}"):
            with guarded():
                links.revoke(link["token"], by=owner(), admin=is_admin(), email=owner_email())
                st.rerun()
    if not live:
        st.caption("No live link: make one to share this run; you can withdraw it at any time.")


def link_url(token: str) -> str:
    """The lab's root with ``?link=``: it opens the run on Compare (for a signed-out visitor, Compare is all there is)."""
    base = lab_url()
    return f"{base}/?link={token}" if base else f"?link={token}"


def exports(run_id: str) -> None:
    report = history.load_run(run_id)
    st.markdown(f"**Run `{run_id[:8]}`**: {md(report['model'])} ({report['task']}), {len(report['results'])} variants, {md(report.get('created', ''))}")
    st.code(share_url(run_id), language=None)
    st.caption("The run's own address: it opens the run only for you (and admins); to share it, make a link below."
               if person() is not None else
               "The run's own address: anyone who has it can open the run (run ids are random and unguessable). "
               "For a link you can withdraw, make one below.")
    share_links(run_id)
    c1, c2, c3 = st.columns(3)
    stem = "qlab-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", report["model"])[:60].strip("._") or "model") + f"-{run_id[:8]}"
    c1.download_button("Download JSON", data=history.export_json(report), file_name=f"{stem}.json", mime="application/json",
                       icon=":material/data_object:", on_click="ignore", key="dl_json")
    c2.download_button("Download CSV", data=history.export_csv(report), file_name=f"{stem}.csv", mime="text/csv",
                       icon=":material/table:", on_click="ignore", key="dl_csv")
    c3.download_button("Download HTML report", data=lambda: _html(run_id), file_name=f"{stem}.html", mime="text/html",
                       icon=":material/description:", on_click="ignore", key="dl_html",
                       help="A standalone page with every chart; plotly.js is inside it, so it opens offline.")


def import_section() -> None:
    ss = st.session_state
    st.subheader("Import a colleague's report")
    st.caption("A JSON report exported from another lab (another machine): it is checked field by field and saved as a run here. "
               "Only JSON is read; nothing is unpickled.")
    up = st.file_uploader("Report JSON", type=["json"], key="import_file")
    if up is not None and ss.get("import_seen") != up.file_id:
        ss["import_seen"] = up.file_id
        who = visitor()
        try:
            token = hosting.take_import(who)          # the per-visitor cap (QLAB_MAX_IMPORTS)
            try:
                run_id = history.import_report(up.getvalue(), up.name, owner=owner(), owner_email=owner_email())
            except Exception:
                hosting.give_back_import(who, token)   # a refused import does not count
                raise
        except Exception as err:  # noqa: BLE001
            ss["import_result"] = {"file_id": up.file_id, "error": err}
        else:
            remember_run(run_id)
            ss["import_result"] = {"file_id": up.file_id, "run_id": run_id}
    res = ss.get("import_result")
    if res and up is not None and res["file_id"] == up.file_id:
        if "error" in res:
            show_error(res["error"])
        else:
            st.success(f"Imported as run `{res['run_id'][:8]}`; select it above to compare it with yours.", icon=":material/check_circle:")


def cross_run(selected: list[str]) -> None:
    reports = []
    for rid in selected:
        try:
            reports.append(history.load_run(rid))
        except Exception as err:  # noqa: BLE001
            show_error(err)
    if len(reports) < 2:
        return
    st.subheader("Runs side by side")
    st.plotly_chart(cross_run_figure(reports), key="fig_cross_run", theme=None, config={"displaylogo": False})
    rows = []
    for rep in reports:
        env = rep.get("environment") or {}
        for row in reference_rows(rep):
            rows.append({"run": rep["run_id"][:8], "machine": f"{env.get('cpu', '?')} ({env.get('threads', '?')} thr)", "model": rep["model"],
                         "variant": row["variant"], "p50 ms": row.get("p50_ms"), "against fp32": row["words"],
                         quality_spec(rep)[0]: row.get("quality")})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption("Latency is the geometric mean of p50 over each run's own length sweep at its recommended batch size; compare like with like.")


def main() -> None:
    ss = st.session_state
    pol = policy()
    st.title("History & share")
    who = person()
    if who is not None:   # sign-in: runs belong to people
        view = st.segmented_control("Runs", ["Mine", "Everyone's"], default="Mine", key="hist_view", persist_state="session") or "Mine"
        shared = links.shared_run_ids()
        runs = [r for r in history.list_runs() if r.get("owner") == who.owner
                or (view == "Everyone's" and (r["run_id"] in shared or is_admin()))]
        st.caption("Mine: the runs you ran or imported. Everyone's: yours and the runs colleagues shared with a link"
                   + (" (as an admin you see every run)." if is_admin() else "."))
    else:
        ids = None if pol.list_all_runs else list(ss.get("my_runs") or [])
        runs = history.list_runs(ids=ids)
        if pol.hosted:
            st.caption("Hosted mode: only the runs of this session are listed; open others with their link.")
    if not runs:
        st.info("No saved runs yet: every comparison finished on the Run page is saved here.", icon=":material/info:")
    else:
        frame = pd.DataFrame([{"run": r["run_id"][:8], "created": r["created"], "model": r["model"], "task": r["task"], "variants": r["variants"],
                               "data": r["data"], "machine": r["cpu"], "recommended": r["recommended"], "imported": "yes" if r["imported"] else ""}
                              for r in runs])
        event = st.dataframe(frame, hide_index=True, on_select="rerun", selection_mode="multi-row", key="runs_table",
                             column_config={"variants": st.column_config.TextColumn(width="medium")})
        picked = [runs[i]["run_id"] for i in (event.selection.rows if event else []) if 0 <= i < len(runs)]
        st.caption("Select a run to open, share or export it; select two or more to compare them across machines.")
        current = ss.get("current_run")
        if not picked and current and any(r["run_id"] == current for r in runs):
            picked = [current]
            st.caption(f"Showing the current run `{current[:8]}`; select rows to pick others (two or more to compare them).")
        if picked:
            first = picked[0]
            c1, c2, _ = st.columns([1, 1, 3])
            if c1.button("Open in Compare", type="primary", icon=":material/monitoring:", key="hist_open"):
                open_run(first)
                st.switch_page("pages/compare.py", query_params={"run": first})
            deletable = all(hosting.may_delete(history.run_owner(rid), owner(), pol, admin=is_admin()) and not opened_by_link(rid) for rid in picked)
            if not deletable:   # offered only to who may: hosted, the session that created every selected run; signed in, its owner
                c2.caption(":material/lock: Only a run's owner (or an admin) can delete it." if who is not None
                           else ":material/lock: Only the session that created a run can delete it on this hosted lab.")
            elif c2.button("Delete", icon=":material/delete:", key="hist_delete", help="Delete the selected run(s) from this lab"
                           + (" (only runs this session created)." if pol.owner_only_delete else ".")):
                refused = None
                for rid in picked:
                    try:
                        history.delete_run(rid, requester=owner(), pol=pol, admin=is_admin(), email=owner_email())
                    except history.HistoryError as err:
                        refused = refused or err
                        continue
                    if ss.get("current_run") == rid:
                        ss["current_run"] = None
                if refused is None:
                    st.rerun()
                show_error(refused)
            exports(first)
            if len(picked) > 1:
                cross_run(picked)
    st.divider()
    import_section()


run_page(main)
