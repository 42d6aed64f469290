"""Data: upload evaluation text (or use the sample), see a preview, its rows, columns and task."""

from __future__ import annotations

import streamlit as st

from ui.shared import TASK_NAMES, UPLOAD_TYPES, dataset_for, inspect_upload, md, model_task, policy, preview_frame, run_page, show_error


def handle_upload(uploaded) -> None:
    """Check a newly uploaded file once; on success it becomes the dataset, on failure nothing changes."""
    ss = st.session_state
    if uploaded is None or uploaded.file_id in (ss.get("last_file_id"),):
        return
    ss["last_file_id"] = uploaded.file_id
    try:
        record = inspect_upload(uploaded.name, uploaded.getvalue())
    except Exception as err:  # noqa: BLE001 - shown below as one line
        ss["upload_error"] = {"file_id": uploaded.file_id, "error": err}
        return
    record["file_id"] = uploaded.file_id
    ss["upload"] = record
    ss["data_source"] = "upload"
    ss["upload_error"] = None
    ss["upload_ok"] = uploaded.file_id


def main() -> None:
    ss = st.session_state
    pol = policy()
    st.title("Data")
    st.caption("The text every variant is measured on. CSV / TSV / JSONL with a `text` column (add `label` for classification, "
               "or `sentence1,sentence2,score` for similarity pairs); a plain `.txt` file for perplexity. UTF-8.")

    left, right = st.columns([3, 2], gap="large")
    with left:
        uploaded = st.file_uploader("Upload evaluation data", type=UPLOAD_TYPES, key="data_file",
                                    max_upload_size=max(1, pol.max_upload_bytes // 2**20),
                                    help=f"Up to {pol.max_upload_bytes // 2**20} MB. "
                                    + ("Your file stays in your session; it is saved only inside runs you share." if pol.hosted else ""))
        handle_upload(uploaded)
        err = ss.get("upload_error")
        if err and uploaded is not None and err["file_id"] == uploaded.file_id:
            show_error(err["error"])
            st.caption("Nothing changed: the previous dataset is still selected.")
        elif uploaded is not None and ss.get("upload_ok") == uploaded.file_id and ss.get("data_source") == "upload":
            up = ss["upload"]
            st.success(f"Loaded **{md(up['name'])}**: {up['rows']} rows, detected task **{up['task']}**.", icon=":material/check_circle:")
    with right:
        st.markdown("**Or use the sample data**")
        st.caption("Small bundled sets written for this lab: news topics (classification), sentence pairs with similarity scores "
                   "(embedding), Python documentation prose (causal LM). The sample follows the model's task.")
        if st.button("Use the sample data", icon=":material/science:", disabled=ss.get("data_source") == "sample"):
            ss["data_source"] = "sample"
            st.rerun()
        if ss.get("upload") and ss.get("data_source") == "sample":
            if st.button(f"Use my upload again ({md(ss['upload']['name'], 60)})", icon=":material/upload_file:"):
                ss["data_source"] = "upload"
                st.rerun()

    st.divider()
    task = model_task()
    up = ss.get("upload")
    using_upload = ss.get("data_source") == "upload" and up is not None
    if using_upload:
        st.subheader(f"Selected: {md(up['name'])}")
        detected = up["task"]
    else:
        st.subheader(f"Selected: sample data for {task}")
        detected = task
    try:
        dataset = dataset_for(task)  # read as the selected model will read it
    except Exception as err:  # noqa: BLE001
        show_error(err)
        st.caption(f"The model on **Models & variants** does {task}; this file does {detected}. Pick a {detected} model, or upload data for {task}.")
        dataset = dataset_for(detected)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Rows", f"{dataset.rows:,}")
    c2.metric("Texts the models see", f"{len(dataset.texts):,}")
    c3.metric("Detected task", detected)
    c4.metric("Columns", ", ".join(dataset.columns) or "plain text")
    if using_upload and detected != task:
        st.info(f"This file looks like **{TASK_NAMES[detected]}** data, but the selected model does **{task}**. "
                f"Choose a {detected} model on Models & variants (the file is read as {dataset.task} data for now).", icon=":material/info:")
    st.dataframe(preview_frame(dataset), hide_index=True, height=320)
    if dataset.raw_text is not None:
        st.caption(f"Perplexity is computed over the whole text: {len(dataset.raw_text):,} characters.")
    limits_section(pol)


def limits_section(pol) -> None:
    """Every limit of this deployment, its value and the environment variable that sets it."""
    import pandas as pd

    with st.expander("Limits of this lab" + (" (hosted mode)" if pol.hosted else ""), expanded=pol.hosted):
        st.caption(pol.describe() + " An operator changes a limit with its environment variable (a missing or invalid value keeps the default).")
        st.dataframe(pd.DataFrame(pol.limits_table()), hide_index=True, key="limits_table",
                     column_config={"limit": st.column_config.TextColumn(width="large")})


run_page(main)
