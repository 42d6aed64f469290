"""Store: the built variants and bundled models kept on disk, with size and age; clear one or all; the exports written."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from ui.shared import fmt_age, is_admin, person, policy, run_page


def describe(entry: dict) -> str:
    label = entry.get("label") or entry.get("recipe") or entry.get("kind") or "?"
    return f"{entry.get('model', '?')} · {label}"


def exports_table(pol) -> None:
    """Every export the lab has written (dashboard downloads and python -m core export), newest first."""
    from core.storage import exports

    st.subheader("Exports")
    rows = exports.list_exports()
    if not rows:
        st.caption("No exports yet: download a variant on Compare, or run `python -m core export --model M --variant V --out DIR`.")
        return
    frame = pd.DataFrame([{
        "model": r.get("model", ""), "variant": r.get("variant", ""), "task": r.get("task", ""),
        "from": "dashboard" if r.get("origin") == "dashboard" else "command line", "runtime": ", ".join(r.get("runtime") or []),
        "size MB": int(r.get("bytes") or 0) / 2**20, "zip MB": (int(r["zip_bytes"]) / 2**20) if r.get("zip_bytes") else None,
        "measured here": "yes" if r.get("measured") else "no", "exported": fmt_age(r.get("created")),
        "on disk": "yes" if r.get("exists") else "deleted", **({"by": r.get("owner_email") or ""} if person() is not None else {}),
        **({} if pol.hosted else {"folder": r.get("folder", "")}),
    } for r in rows])
    frame["zip MB"] = pd.to_numeric(frame["zip MB"], errors="coerce")   # an export without a zip shows a blank, not "None"
    st.dataframe(frame, hide_index=True, placeholder="—", column_config={"size MB": st.column_config.NumberColumn(format="%.1f"),
                                                                         "zip MB": st.column_config.NumberColumn(format="%.1f")})
    st.caption("Exports are copies that run without the lab: deleting or clearing store entries leaves them as they are.")


def audit_tail(n: int = 50) -> None:
    """The audit log's last lines, for admins (sign-in on) and on a local lab; nobody else sees who did what."""
    from core.storage import audit

    if person() is not None and not is_admin():
        return
    if person() is None and policy().hosted:
        return
    lines = audit.read(limit=n)
    with st.expander(f"Audit log: the last {len(lines)} actions", icon=":material/policy:"):
        if not lines:
            st.caption("Nothing recorded yet.")
            return
        st.dataframe(pd.DataFrame([{"time": line.get("time"), "action": line.get("action"), "who": line.get("email") or (line.get("who") or "")[:15],
                                    "target": str(line.get("target") or "")[:12]} for line in reversed(lines)]), hide_index=True)
        st.caption("All of it: `python -m core audit [--since 24h] [--json]` on the server.")


def main() -> None:
    from core.storage.store import ModelStore

    ss = st.session_state
    pol = policy()
    store = ModelStore()
    st.title("Store")
    entries = store.entries()
    total = store.total_bytes()  # everything under the root: what the limit counts
    c1, c2, c3 = st.columns(3)
    c1.metric("Entries", len(entries))
    c2.metric("Total size", f"{total / 2**20:,.1f} MB")
    c3.metric("Limit", f"{store.size_limit / 2**30:,.1f} GB", help="Past the limit the least recently used entries are evicted.")
    st.progress(min(1.0, total / max(1, store.size_limit)), text=f"{total / max(1, store.size_limit):.1%} of the limit")
    if not pol.hosted:
        st.caption(f"Root: `{store.root}` (set QLAB_CACHE_DIR to move it).")
    if ss.pop("store_message", None) is not None:
        st.success(ss.get("store_done", "Done."), icon=":material/check_circle:")
    if not entries:
        st.info("The store is empty: variants are built and kept here the first time a comparison needs them.", icon=":material/info:")
        exports_table(pol)
        return
    now = time.time()
    frame = pd.DataFrame([{
        "model": e.get("model", ""), "variant": e.get("label") or e.get("recipe", ""), "kind": e.get("kind", ""), "task": e.get("task", ""),
        "size MB": int(e.get("size_bytes", 0)) / 2**20, "built": fmt_age(e.get("created")), "last used": fmt_age(e.get("last_used")),
        "age days": (now - float(e.get("created") or now)) / 86400, "build s": e.get("build_s"), "key": e["key"][:12],
    } for e in entries])
    st.dataframe(frame, hide_index=True, column_config={"size MB": st.column_config.NumberColumn(format="%.1f"),
                                                        "age days": st.column_config.NumberColumn(format="%.2f"),
                                                        "build s": st.column_config.NumberColumn(format="%.1f")})
    exports_table(pol)
    audit_tail()
    if not (pol.can_clear_store or is_admin()):
        st.caption(":material/lock: Clearing the store is for the lab's admins." if person() is not None
                   else ":material/lock: Clearing the store is disabled on this hosted lab.")
        return
    st.subheader("Clear")
    left, right = st.columns(2)
    with left:
        keys = [e["key"] for e in entries]
        by_key = {e["key"]: e for e in entries}
        key = st.selectbox("Entry", keys, format_func=lambda k: f"{describe(by_key[k])} ({int(by_key[k].get('size_bytes', 0)) / 2**20:.1f} MB)",
                           key="store_pick")
        if st.button("Delete this entry", icon=":material/delete:", key="store_delete"):
            store.delete(key)
            ss["store_message"], ss["store_done"] = True, f"Deleted {describe(by_key[key])}."
            st.rerun()
    with right:
        sure = st.checkbox("Yes, delete every stored variant and bundled model", key="store_sure")
        if st.button("Clear the store", icon=":material/delete_forever:", disabled=not sure, key="store_clear", type="primary"):
            n = store.clear()
            ss["store_message"], ss["store_done"] = True, f"Cleared {n} entries."
            st.rerun()
        st.caption("Trained bundled models (minilm-classifier, demo-gpt) are retrained on next use.")


run_page(main)
