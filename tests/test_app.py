"""The dashboard through Streamlit's AppTest: every page, uploads (good and bad), a real small comparison,
its charts, history and sharing, the playground, weights, the store, cancelling, and hosted mode.

The comparison is real (bundled MiniLM, fp32 + dynamic-int8, batch 1, 8 tokens, quick protocol, 12 sentences),
run by the job queue in its child process against the session's private store (tests/conftest.py).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
SENTENCES = [
    "The train to Lyon leaves at nine.", "Quantized models are smaller on disk.", "A cat sleeps on the warm windowsill.",
    "Interest rates rose again this spring.", "The striker scored in the final minute.", "Fresh bread smells wonderful.",
    "Rain is expected over the weekend.", "The museum opens a new wing in May.", "She plays the violin every evening.",
    "Compilers turn source code into machine code.", "The river flooded the lower fields.", "Our team shipped the release on time.",
]
GOOD_CSV = ("text\n" + "\n".join(SENTENCES) + "\n").encode()
RUN_TIMEOUT_S = 300


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120)


def texts(elements) -> list[str]:
    """What a person reads: user strings are backslash-escaped in the markdown source (hosting.md)."""
    return [re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", str(e.value)) for e in elements]


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def poll(at: AppTest, done, timeout: float = RUN_TIMEOUT_S, every: float = 1.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        no_exceptions(at)
        if done(at):
            return
        time.sleep(every)
    raise AssertionError(f"timed out; errors {texts(at.error)}, info {texts(at.info)}")


def setup_small_comparison(at: AppTest, variants=("fp32", "dynamic-int8")) -> None:
    """Choose the comparison on Models & variants, through its widgets."""
    at.switch_page("pages/models.py").run()
    no_exceptions(at)
    at.multiselect(key="v_variants").set_value(list(variants)).run()
    at.multiselect(key="hw_batches").set_value([1]).run()
    at.multiselect(key="hw_seqs").set_value([8]).run()
    at.radio(key="hw_measure").set_value("quick").run()
    no_exceptions(at)


@pytest.fixture(scope="module")
def finished():
    """One real comparison, uploaded data included, shared by the tests that look at its results."""
    at = new_app()
    at.run()
    no_exceptions(at)
    at.file_uploader(key="data_file").upload("my_sentences.csv", GOOD_CSV, "text/csv")
    at.run()
    setup_small_comparison(at)
    at.number_input(key="b_min_cosine").set_value(0.98).run()   # a budget of its own: it travels with the run
    at.switch_page("pages/run.py").run()
    no_exceptions(at)
    assert not at.error, texts(at.error)
    assert any("at batch 1 with cosine fidelity ≥ 0.98" in m for m in texts(at.markdown)), texts(at.markdown)
    started = time.time()
    at.button(key="run_start").click().run()
    poll(at, lambda a: any("Finished in" in s or "instant" in s for s in texts(a.success)) or a.error)
    assert not at.error, texts(at.error)
    run_id = at.session_state["current_run"]
    return {"at": at, "run_id": run_id, "seconds": time.time() - started}


# -- navigation -------------------------------------------------------------------------------
def test_every_page_renders_with_the_sidebar():
    at = new_app()
    at.run()
    no_exceptions(at)
    assert texts(at.title) == ["Data"]
    sidebar = " ".join(texts(at.sidebar.markdown) + texts(at.sidebar.caption))
    assert "Hardware" in sidebar and "logical cores" in sidebar and "Store" in sidebar
    titles = {"models": "Models & variants", "run": "Run", "compare": "Compare", "weights": "Weights", "playground": "Playground",
              "history": "History & share", "store": "Store", "data": "Data"}
    for page, title in titles.items():
        at.switch_page(f"pages/{page}.py").run()
        no_exceptions(at)
        assert texts(at.title) == [title], page
    assert not at.error, texts(at.error)


@pytest.fixture()
def navigations(monkeypatch):
    """Every st.navigation call of the app's runs: ([(title, url_path, visibility)], position), the last one last."""
    import streamlit as st

    seen, real = [], st.navigation

    def spy(pages, **kwargs):
        listed = [p for group in (pages.values() if isinstance(pages, dict) else [pages]) for p in group]
        seen.append(([(p.title, p.url_path, p.visibility) for p in listed], kwargs.get("position", "sidebar")))
        return real(pages, **kwargs)

    monkeypatch.setattr(st, "navigation", spy)
    return seen


LAB_WORDS = ("app", "auth", "compare", "data", "history", "jobwatch", "models", "playground", "run", "shared", "store", "weights")


def test_signed_out_the_navigation_holds_the_sign_in_page_alone(monkeypatch, navigations):
    """With sign-in on, a signed-out visitor's every page is the sign-in page, given to st.navigation alone and not
    shown as navigation: the script never stops before st.navigation (Streamlit would then list pages/ in the sidebar)."""
    monkeypatch.setenv("QLAB_AUTH", "oidc")
    at = new_app()
    at.run()
    no_exceptions(at)
    assert navigations[-1] == ([("Sign in", "", "visible")], "hidden")
    assert texts(at.title) == ["Quantization Lab"] and [b.label for b in at.button] == ["Sign in"]
    assert "sign in with your team's account" in " ".join(texts(at.markdown)).lower()
    assert not at.sidebar.children, "nothing in the sidebar"
    for page in ("run", "compare", "history"):   # no page of the lab is there to switch to
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{page}.py")
    at.run()
    assert navigations[-1] == ([("Sign in", "", "visible")], "hidden") and [b.label for b in at.button] == ["Sign in"]
    named = " ".join(f"{t} {u}" for pages, _ in navigations for t, u, _ in pages).lower()
    assert not [w for w in LAB_WORDS if re.search(rf"\b{w}\b", named)], named


def test_a_refused_domain_sees_the_refusal_alone(monkeypatch, navigations):
    monkeypatch.setenv("QLAB_AUTH", "oidc")
    monkeypatch.setenv("QLAB_ALLOWED_DOMAINS", "example.com")
    at = new_app()
    at.user = {"is_logged_in": True, "sub": "oidc|eve", "email": "eve@elsewhere.org", "name": "Eve"}
    at.run()
    no_exceptions(at)
    assert navigations[-1] == ([("Quantization Lab", "", "visible")], "hidden")
    assert any("not in a domain this lab admits (example.com)" in e for e in texts(at.error)) and [b.label for b in at.button] == ["Sign out"]
    assert not at.sidebar.children

    at = new_app()   # a colleague from an admitted domain gets the lab's pages, listed in the sidebar
    at.user = {"is_logged_in": True, "sub": "oidc|al", "email": "al@example.com", "name": "Al"}
    at.run()
    no_exceptions(at)
    pages, position = navigations[-1]
    assert position == "sidebar" and [t for t, _, _ in pages] == ["Data", "Models & variants", "Run", "Compare", "Weights", "Playground",
                                                                   "History & share", "Store"]
    assert any("Signed in as **al@example.com**" in c for c in texts(at.sidebar.caption))


def test_a_link_for_anyone_opens_its_run_alone_signed_out(monkeypatch, navigations):
    from core.access.identity import person_key
    from core.storage import history, links

    monkeypatch.setenv("QLAB_AUTH", "oidc")
    run_id = history.import_report((ROOT / "tests" / "data" / "embedding_minilm_headline.json").read_bytes(), "alice.json",
                                   owner=person_key("oidc|alice"), owner_email="alice@example.com")
    token = links.create(run_id, person_key("oidc|alice"), "anyone")
    at = new_app()
    at.query_params["link"] = token
    at.run()
    no_exceptions(at)
    assert navigations[-1][0] == [("Compare", "", "visible")]
    assert texts(at.title) == ["Compare"] and at.session_state["current_run"] == run_id and not at.error, texts(at.error)
    with pytest.raises(ValueError, match="Could not find a navigation page"):   # no other page of the lab
        at.switch_page("pages/run.py")

    team = links.create(run_id, person_key("oidc|alice"), "team")   # a link for colleagues: the sign-in page
    at = new_app()
    at.query_params["link"] = team
    at.run()
    no_exceptions(at)
    assert navigations[-1] == ([("Sign in", "", "visible")], "hidden") and [b.label for b in at.button] == ["Sign in"]


# -- hardware targets on a cluster --------------------------------------------------------------------
def cluster_rows(*alive_ids: str, here: str = "box-a", lost: tuple[str, ...] = ()) -> list[dict]:
    """A Ray cluster's listing as `python -m core hardware --json` gives it (this machine's node not listed first)."""
    return [{"id": t, "name": t, "node_id": f"node-{t}", "cpu": "Test CPU", "arch": "x86_64", "cores": 2, "isa": ["avx2"], "gpu": None,
             "alive": t not in lost, "this_machine": t == here, "runtimes": None} for t in (*alive_ids, *lost)]


@pytest.fixture()
def fake_cluster(monkeypatch):
    """QLAB_RAY_ADDRESS set, and the cluster's listing (ui.shared._cluster_listing, a subprocess otherwise) answered
    from ``listing["rows"]``: no Ray is started."""
    import ui.shared

    listing = {"rows": cluster_rows("box-b", "box-a"), "error": None, "calls": 0}

    def fake(address: str):
        listing["calls"] += 1
        return [dict(r) for r in listing["rows"]], listing["error"]

    monkeypatch.setenv("QLAB_RAY_ADDRESS", "127.0.0.1:6399")
    monkeypatch.setattr(ui.shared, "_cluster_listing", fake)
    return listing


def sidebar_targets(at: AppTest) -> list[str]:
    line = next(c for c in texts(at.sidebar.caption) if "Ray cluster at" in c)
    return re.findall(r"\*\*([^*]+)\*\*", line.split("measuring on", 1)[1]) or [line.split("measuring on ", 1)[1].split(" (")[0]]


def test_the_sidebar_models_and_run_agree_on_the_targets_of_a_first_visit(fake_cluster):
    """On a first visit with a cluster, the sidebar (drawn before the page), Models & variants and Run name the same
    target: this machine's node (box-a), not the first listed (box-b) nor 'local'."""
    at = new_app()
    at.run()
    no_exceptions(at)
    assert sidebar_targets(at) == ["box-a"]
    at.switch_page("pages/models.py").run()
    no_exceptions(at)
    assert at.multiselect(key="hw_targets").value == ["box-a"] and sidebar_targets(at) == ["box-a"]
    at.switch_page("pages/run.py").run()
    no_exceptions(at)
    assert any("Hardware targets: **box-a**" in m for m in texts(at.markdown)), texts(at.markdown)

    fresh = new_app()   # straight to Run, Models never opened: the run measures where the sidebar says
    fresh.switch_page("pages/run.py")
    fresh.run()
    no_exceptions(fresh)
    assert texts(fresh.title) == ["Run"] and sidebar_targets(fresh) == ["box-a"]
    assert any("Hardware targets: **box-a**" in m for m in texts(fresh.markdown)), texts(fresh.markdown)

    at.switch_page("pages/models.py").run()   # a pick is what all three say from then on
    at.multiselect(key="hw_targets").set_value(["box-b", "box-a"]).run()
    no_exceptions(at)
    assert sidebar_targets(at) == ["box-b", "box-a"]
    at.switch_page("pages/run.py").run()
    assert sidebar_targets(at) == ["box-b", "box-a"] and any("Hardware targets: **box-b**, **box-a**" in m for m in texts(at.markdown))

    fake_cluster["rows"] = cluster_rows("box-a", lost=("box-b",))   # a picked node is lost: the rest of the pick stays
    at.run()
    assert sidebar_targets(at) == ["box-a"] and any("Hardware targets: **box-a**" in m for m in texts(at.markdown))

    from ui.shared import default_targets, targets_for

    rows = cluster_rows("box-b", "box-a", here="box-c", lost=("box-c",))   # this machine's node lost: the first reachable one
    assert default_targets(rows) == ["box-b"] and default_targets([]) == [] and targets_for(rows, ["box-c", "nope"]) == ["box-b"]


def test_the_sidebar_says_this_machine_when_the_cluster_cannot_be_listed(fake_cluster):
    fake_cluster["rows"], fake_cluster["error"] = [], "The Ray cluster at 127.0.0.1:6399 cannot be reached."
    at = new_app()
    at.run()
    no_exceptions(at)
    assert sidebar_targets(at) == ["this machine"]
    at.switch_page("pages/models.py").run()
    no_exceptions(at)
    assert any("cannot be reached" in e for e in texts(at.error)), texts(at.error)


# -- data --------------------------------------------------------------------------------------
BAD_UPLOADS = [
    ("picture.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "PNG image"),
    ("empty.csv", b"", "empty"),
    ("latin1.csv", "text\ncaf\xe9 cr\xe8me\n".encode("latin-1"), "not valid UTF-8"),
    ("columns.csv", b"foo,bar\n1,2\n", "has no text column"),
    ("broken.jsonl", b'{"text": "ok"}\n{"text": \n', "malformed JSONL"),
]


def test_upload_good_then_bad_files_keep_the_previous_dataset():
    at = new_app()
    at.run()
    at.file_uploader(key="data_file").upload("my_sentences.csv", GOOD_CSV, "text/csv")
    at.run()
    no_exceptions(at)
    assert any("my_sentences.csv" in s and "12 rows" in s for s in texts(at.success)), texts(at.success)
    assert at.session_state["upload"]["task"] == "embedding"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "12" and metrics["Detected task"] == "embedding" and metrics["Columns"] == "text"
    assert at.dataframe[0].value.shape[0] == 12
    for name, blob, words in BAD_UPLOADS:
        at.file_uploader(key="data_file").set_value((name, blob, "text/csv"))
        at.run()
        no_exceptions(at)
        errors = texts(at.error)
        assert len(errors) == 1 and words in errors[0] and name in errors[0], (name, errors)
        assert "\n" not in errors[0] and "Traceback" not in errors[0]
        assert at.session_state["upload"]["name"] == "my_sentences.csv"   # nothing changed
        assert {m.label: m.value for m in at.metric}["Rows"] == "12"


def test_too_large_upload_names_the_limit(monkeypatch):
    monkeypatch.setenv("QLAB_MAX_UPLOAD_MB", "1")
    at = new_app()
    at.run()
    big = b"text\n" + b"a reasonably long sentence for the size test\n" * 30000
    at.file_uploader(key="data_file").upload("big.csv", big, "text/csv")
    at.run()
    no_exceptions(at)
    assert any("limited to 1 MB" in e for e in texts(at.error)), texts(at.error)
    assert at.session_state["data_source"] == "sample"


def test_classification_upload_is_detected():
    at = new_app()
    at.run()
    csv = b"text,label\nStocks fell.,business\nThe match ended 2-1.,sports\n"
    at.file_uploader(key="data_file").upload("news.csv", csv, "text/csv")
    at.run()
    no_exceptions(at)
    assert at.session_state["upload"]["task"] == "classification"
    assert any("classification" in i for i in texts(at.info))  # the selected model (minilm) does embedding: said so


# -- models ------------------------------------------------------------------------------------
def test_models_page_shows_what_cannot_run_and_why():
    at = new_app()
    at.switch_page("pages/models.py").run()
    no_exceptions(at)
    frame = at.dataframe[0].value
    fp16 = frame[frame["variant"] == "fp16"].iloc[0]
    assert fp16["runs here"] == "no" and "CUDA" in fp16["why not"]
    assert "fp16" not in at.multiselect(key="v_variants").options
    at.text_input(key="v_extra").input("nonsense-int3").run()
    assert any("Unknown variant 'nonsense-int3'" in e for e in texts(at.error)), texts(at.error)
    at.radio(key="m_kind").set_value("hub").run()
    at.text_input(key="m_hub").input("not a valid id!").run()
    no_exceptions(at)
    assert any("not a bundled model" in e for e in texts(at.error)), texts(at.error)


def test_hosted_mode_refuses_local_folders_and_says_so(monkeypatch):
    monkeypatch.setenv("QLAB_HOSTED", "1")
    at = new_app()
    at.switch_page("pages/models.py").run()
    no_exceptions(at)
    assert "local" not in at.radio(key="m_kind").options
    assert any("Hosted mode" in c for c in texts(at.caption))
    assert any("Local model folders are disabled" in c for c in texts(at.caption))
    at.switch_page("pages/history.py").run()
    assert any("No saved runs yet" in i for i in texts(at.info))  # another visitor's runs are not listed
    at.switch_page("pages/store.py").run()
    assert not [b for b in at.button if b.key == "store_clear"]


# -- a real comparison -------------------------------------------------------------------------------
def test_run_compare_and_share(finished):
    at = finished["at"]
    run_id = finished["run_id"]
    assert len(run_id) == 32
    at.switch_page("pages/compare.py").run()
    no_exceptions(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 6, len(charts)   # the five measurement charts and each timed cell's outputs against fp32's
    verdicts = texts(at.success) + texts(at.error)   # each timed cell's outputs judged, in words either way
    assert any("Every timed cell's outputs stay within the budget" in s or "Its latency there timed wrong outputs" in s for s in verdicts), verdicts
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["fp32", "dynamic-int8"]
    words = table[table["variant"] == "dynamic-int8"]["against fp32"].iloc[0]
    # speed in words: Nx faster or slower, or the same within 5% (dynamic-int8 can match fp32 where fp32 has AMX)
    assert re.search(r"\d\.\dx (faster|slower)|same speed as fp32", words) and "smaller" in words and "cosine" in words, words
    assert at.query_params["run"] == [run_id] or at.query_params["run"] == run_id
    assert any(m.label == "Recommended" for m in at.metric)
    assert any("Quick measurement" in w for w in texts(at.warning))   # the protocol's limits are said, not hidden
    # the same comparison again is answered from the saved run at once
    at.switch_page("pages/run.py").run()
    at.button(key="run_start").click().run()
    t0 = time.time()
    poll(at, lambda a: any("instant" in s for s in texts(a.success)), timeout=20, every=0.1)
    assert time.time() - t0 < 10
    assert at.session_state["current_run"] == run_id


def test_a_run_opened_while_compare_shows_another_replaces_it(finished):
    """Compare keeps its run in the address (?run=); a run opened afterwards without the address (a followed job that
    finishes while the person is on Compare) is the one shown, not the address's older one opened again."""
    from core.storage import history

    at = finished["at"]
    older = finished["run_id"]
    newer = history.save_run(history.load_run(older))
    at.session_state["current_run"] = older
    at.switch_page("pages/compare.py").run()
    assert at.query_params["run"] in (older, [older])
    at.session_state["current_run"] = newer   # what ui.jobwatch.on_finish does (open_run) before it reruns the app
    at.run()
    no_exceptions(at)
    assert at.session_state["current_run"] == newer
    assert at.query_params["run"] in (newer, [newer])
    assert any(f"run `{newer[:8]}`" in m for m in texts(at.markdown)), texts(at.markdown)
    at.session_state["current_run"] = older   # the module's other tests look at the finished run
    at.run()


def test_the_runs_budget_is_saved_and_shown_on_compare(finished):
    from core.storage import history

    report = history.load_run(finished["run_id"])
    assert report["budgets"]["min_cosine"] == pytest.approx(0.98) and report["settings"]["recommend_batch_size"] == 1
    at = finished["at"]
    at.switch_page("pages/compare.py").run()
    no_exceptions(at)
    assert at.number_input(key="cmp_budget_min_cosine").value == pytest.approx(0.98)
    assert any(s.startswith("**Recommended:**") and "0.98" in s for s in texts(at.success)), texts(at.success)


def test_history_exports_and_link(finished):
    at = finished["at"]
    run_id = finished["run_id"]
    at.switch_page("pages/history.py").run()
    no_exceptions(at)
    assert run_id[:8] in list(at.dataframe[0].value["run"])
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download JSON", "Download CSV", "Download HTML report"]
    assert any(f"?run={run_id}" in c.value for c in at.code)
    # a colleague opens the link in a fresh session: the Compare page is the default and shows the run
    other = new_app()
    other.query_params["run"] = run_id
    other.run()
    no_exceptions(other)
    assert texts(other.title) == ["Compare"] and len(other.get("plotly_chart")) == 6


def test_bad_run_link_is_one_line():
    at = new_app()
    at.query_params["run"] = "0123"
    at.run()
    no_exceptions(at)
    assert any("is not a run id" in e for e in texts(at.error)), texts(at.error)


def test_import_rejects_a_bad_report_and_accepts_a_good_one(finished):
    from core.storage import history

    at = new_app()
    at.switch_page("pages/history.py").run()
    at.file_uploader(key="import_file").upload("bad.json", b"{oops", "application/json")
    at.run()
    no_exceptions(at)
    assert any("not valid JSON" in e for e in texts(at.error)), texts(at.error)
    good = history.export_json(history.load_run(finished["run_id"])).encode()
    at.file_uploader(key="import_file").set_value(("theirs.json", good, "application/json"))
    at.run()
    no_exceptions(at)
    assert any("Imported as run" in s for s in texts(at.success)), texts(at.success)


def test_playground_runs_both_variants(finished):
    at = finished["at"]
    at.switch_page("pages/playground.py").run()
    no_exceptions(at)
    assert at.selectbox(key="pg_a").value == "fp32" and at.selectbox(key="pg_b").value == "dynamic-int8"
    assert not at.warning, texts(at.warning)   # both were built by the comparison: nothing to build
    submit = [b for b in at.button if b.proto.label == "Run both"][0]
    submit.click().run()
    no_exceptions(at)
    assert not at.error, texts(at.error)
    keys = [c.proto.id for c in at.get("plotly_chart")]
    assert len(keys) == 3   # a similarity matrix per variant, and their difference


def test_weights_page(finished):
    at = finished["at"]
    at.switch_page("pages/weights.py").run()
    no_exceptions(at)
    assert len(at.get("plotly_chart")) == 2
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["absmax relative error"].endswith("%")
    layers = at.selectbox(key="w_layer").options
    assert len(layers) > 30  # 6 layers x 6 Linear weights in MiniLM
    at.selectbox(key="w_layer").set_value("encoder.layer.3.intermediate.dense.weight").run()
    at.radio(key="w_gran").set_value("tensor").run()
    no_exceptions(at)
    per_tensor = {m.label: m.value for m in at.metric}["absmax relative error"]
    assert per_tensor != metrics["absmax relative error"]

    def error(label="absmax relative error") -> float:
        return float({m.label: m.value for m in at.metric}[label].rstrip("%"))

    at.radio(key="w_bits").set_value(4).run()          # 4 bits: 16 levels instead of 256
    no_exceptions(at)
    tensor4 = error()
    assert tensor4 > 8 * float(per_tensor.rstrip("%"))
    at.radio(key="w_gran").set_value("group").run()
    no_exceptions(at)
    assert error() < tensor4 / 2 and error("zero-point relative error") < tensor4 / 2
    import json

    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    layers = next(s for s in specs if s["layout"]["title"]["text"].startswith("Quantization error per layer"))
    assert "int4" in layers["layout"]["title"]["text"] and [t["name"] for t in layers["data"]][-1] == "per group of 32"
    hist = next(s for s in specs if s["layout"]["title"]["text"].startswith("Weights of"))
    assert any(t.get("name") == "absmax (group 32) int4 → fp32" for t in hist["data"])


def test_cancel_a_running_comparison(finished):
    at = new_app()
    at.run()
    setup_small_comparison(at, variants=("fp32", "onnx-int8"))
    at.radio(key="hw_measure").set_value("standard").run()
    at.switch_page("pages/run.py").run()
    at.button(key="run_start").click().run()
    no_exceptions(at)
    cancel = [b for b in at.button if b.key == "run_cancel"]
    assert cancel, "a running comparison offers Cancel"
    cancel[0].click().run()
    poll(at, lambda a: any("Cancelled" in w for w in texts(a.warning)), timeout=60, every=0.5)
    assert at.session_state["current_run"] is None


def test_store_page_lists_and_deletes(finished):
    from core.storage.store import ModelStore

    at = finished["at"]
    at.switch_page("pages/store.py").run()
    no_exceptions(at)
    before = len(ModelStore().entries())
    assert before >= 2 and at.dataframe[0].value.shape[0] == before
    pick = next(e["key"] for e in ModelStore().entries() if e.get("recipe") == "dynamic-int8")
    at.selectbox(key="store_pick").set_value(pick).run()
    at.button(key="store_delete").click().run()
    no_exceptions(at)
    assert len(ModelStore().entries()) == before - 1
    assert any("Deleted" in s for s in texts(at.success))


# -- the playground's generation loop, on a torch and an ONNX Runtime variant -------------------------
def test_generation_loop_works_for_torch_and_onnx_variants(tiny_gpt2_dir):
    import numpy as np

    from core.engine.variants import get_variant
    from core.inputs.sources import load_tokenizer, resolve
    from core.serving.playground import first_divergence, generate

    source = resolve(str(tiny_gpt2_dir), "causal-lm")
    tok = load_tokenizer(source)
    torch_v = get_variant(source, "fp32").variant
    onnx_v = get_variant(source, "onnx-fp32").variant
    assert onnx_v.module.__class__.__name__ == "InferenceSession"
    greedy = generate(torch_v, tok, "Quantization maps", max_new_tokens=8, max_positions=64)
    # greedy really is argmax of the variant's own logits, one step at a time
    ids = list(tok("Quantization maps", add_special_tokens=False)["input_ids"])
    for token in greedy["tokens"]:
        arr = np.asarray([ids], dtype=np.int64)
        assert token == int(np.argmax(torch_v(arr, np.ones_like(arr))[0, -1]))
        ids.append(token)
    on_onnx = generate(onnx_v, tok, "Quantization maps", max_new_tokens=8, max_positions=64)
    assert len(on_onnx["tokens"]) == len(greedy["tokens"]) or tok.eos_token_id in on_onnx["tokens"]
    assert greedy["kv_cache"] and on_onnx["kv_cache"] and greedy["ttft_s"] > 0   # both decode one token per step through their cache
    assert on_onnx["tokens"][:len(greedy["tokens"])] == greedy["tokens"][:len(on_onnx["tokens"])]
    # sampling: the same seed gives the same text, on either runtime's logits
    a = generate(torch_v, tok, "The quick brown", max_new_tokens=12, temperature=1.0, top_k=20, seed=7, max_positions=64)
    b = generate(torch_v, tok, "The quick brown", max_new_tokens=12, temperature=1.0, top_k=20, seed=7, max_positions=64)
    assert a["tokens"] == b["tokens"] and first_divergence(a["tokens"], b["tokens"]) is None
    # prompts longer than the model's window are cut to the last max_positions tokens, not an error
    long = generate(onnx_v, tok, "the lazy dog " * 40, max_new_tokens=3, max_positions=64)
    assert len(long["tokens"]) >= 1


def use_local_model(at: AppTest, folder, task: str) -> None:
    at.switch_page("pages/models.py").run()
    at.radio(key="m_kind").set_value("local").run()
    at.text_input(key="m_local").input(str(folder)).run()
    at.selectbox(key="m_task").set_value(task).run()
    no_exceptions(at)


def test_playground_builds_missing_variants_in_the_background(tiny_classifier_dir, monkeypatch):
    at = new_app()
    at.run()
    use_local_model(at, tiny_classifier_dir, "classification")
    at.multiselect(key="v_variants").set_value(["fp32", "dynamic-int8"]).run()
    no_exceptions(at)
    assert not at.error, texts(at.error)
    at.switch_page("pages/playground.py").run()
    no_exceptions(at)
    assert any("Not built yet" in w for w in texts(at.warning)), texts(at.warning)
    at.button(key="pg_build").click().run()
    poll(at, lambda a: not a.warning and not a.error, timeout=180, every=0.5)   # the build job ran in the queue

    # while an evaluation holds the machine, the playground waits for it (here for 1 s), then says so in one line
    from core.execution.machine_lock import machine_lock
    from core.storage.history import store_root

    monkeypatch.setenv("QLAB_PLAYGROUND_WAIT_S", "1")
    with machine_lock(store_root(), {"by": "evaluation", "model": "someone else's"}):
        [b for b in at.button if b.proto.label == "Run both"][0].click().run()
    no_exceptions(at)
    assert any("still measuring on this machine after 1 s" in w for w in texts(at.warning)), texts(at.warning)
    assert not at.dataframe

    submit = [b for b in at.button if b.proto.label == "Run both"][0]
    submit.click().run()
    no_exceptions(at)
    assert not at.error, texts(at.error)
    tables = [d.value for d in at.dataframe]
    assert len(tables) == 2 and list(tables[0].columns) == ["text", "label", "confidence"]
    assert set(tables[0]["label"]) <= {"neg", "neu", "pos"} and tables[0]["confidence"].between(0, 1).all()
    assert any("Agrees with the other variant" in c for c in texts(at.caption))


# -- quality budgets and the live recommendation ------------------------------------------------------
def embedding_report() -> dict:
    """A saved run without measuring: onnx-int8 fastest (cosine 0.9935), dynamic-int8 next (0.997), fp32 the reference."""
    from core.reporting.recommend import recommend
    from test_charts import result

    rep = {"task": "embedding", "model": "minilm", "run_id": "", "created": "2026-01-01T00:00:00+00:00",
           "environment": {"cpu": "Test CPU", "threads": 2, "cores": 2, "device": "cpu"},
           "budgets": {"min_cosine": 0.99, "max_accuracy_drop": 1.0, "max_ppl_increase": 2.0},
           "settings": {"batch_sizes": [1, 8], "seq_lengths": [16, 64], "recommend_batch_size": 1}, "data": {"name": "sample.csv", "rows": 40},
           "results": [result("fp32", size_mb=86.7, speed=1.0, quality={"cosine_fidelity": 1.0}),
                       result("onnx-int8", size_mb=22.0, speed=0.4, quality={"cosine_fidelity": 0.9935}),
                       result("dynamic-int8", size_mb=30.0, speed=1 / 1.5, quality={"cosine_fidelity": 0.997})]}
    rep["recommended"] = recommend(rep["results"], "embedding", rep["budgets"], 1)
    return rep


def recommended_on_chart(at: AppTest) -> str:
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    marks = [a["text"] for a in spec["layout"].get("annotations", []) if "recommended:" in a.get("text", "")]
    assert len(marks) == 1, marks
    return marks[0].split("recommended: ")[1]


def test_compare_recomputes_the_recommendation_when_the_budget_changes():
    from core.storage import history

    run_id = history.save_run(embedding_report())
    at = new_app()
    at.query_params["run"] = run_id
    at.run()
    no_exceptions(at)
    assert texts(at.title) == ["Compare"]
    budget = at.number_input(key="cmp_budget_min_cosine")
    assert budget.value == pytest.approx(0.99)
    assert texts(at.success) == ["**Recommended:** **onnx-int8** is 2.5x faster than fp32 at batch 1 (1.73 ms vs 4.34 ms p50) "
                                 "with cosine fidelity 0.9935 >= 0.99."]
    assert {m.label: m.value for m in at.metric}["Recommended"] == "onnx-int8" and recommended_on_chart(at) == "onnx-int8"

    budget.set_value(0.995).run()   # onnx-int8 falls out of the budget: dynamic-int8 is the fastest left
    no_exceptions(at)
    success = texts(at.success)[0]
    assert success.startswith("**Recommended:** **dynamic-int8** is 1.5x faster") and "cosine fidelity 0.9970 >= 0.995" in success
    assert "onnx-int8 is faster still but its cosine fidelity 0.9935 < 0.995" in success
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Recommended"] == "dynamic-int8" and metrics["Speed vs fp32 (batch 1)"] == "1.50x"
    assert recommended_on_chart(at) == "dynamic-int8"
    assert any("the saved run recommended **onnx-int8**" in c for c in texts(at.caption))

    budget.set_value(0.9999).run()  # only fp32 is good enough
    assert {m.label: m.value for m in at.metric}["Recommended"] == "fp32" and recommended_on_chart(at) == "fp32"
    at.selectbox(key="cmp_batch").set_value(8).run()   # the batch size the recommendation is made at follows too
    no_exceptions(at)
    assert "at batch 8" in texts(at.success)[0]
    assert history.load_run(run_id)["recommended"]["variant"] == "onnx-int8"   # the saved run is untouched


def test_models_page_offers_only_the_budget_of_the_task(tiny_classifier_dir):
    at = new_app()
    at.switch_page("pages/models.py").run()
    no_exceptions(at)
    budgets = [n.key for n in at.number_input if n.key.startswith("b_")]
    assert budgets == ["b_min_cosine"] and at.number_input(key="b_min_cosine").value == pytest.approx(0.99)
    assert at.selectbox(key="hw_rec_batch").value == 1
    at.selectbox(key="hw_rec_batch").set_value(8).run()
    use_local_model(at, tiny_classifier_dir, "classification")
    assert [n.key for n in at.number_input if n.key.startswith("b_")] == ["b_max_accuracy_drop"]
    at.number_input(key="b_max_accuracy_drop").set_value(2.5).run()
    at.switch_page("pages/run.py").run()
    no_exceptions(at)
    assert any("fastest variant at batch 8 with accuracy drop ≤ 2.5 pt" in m for m in texts(at.markdown)), texts(at.markdown)


def test_models_page_puts_the_budget_on_the_measure_picked(tiny_classifier_dir):
    """Issue 27: "Budget on" offers the task's measures; the number input, the Run page's words and the comparison's
    budgets follow the one picked (only then does the comparison carry a budget, so an unchanged one keeps its key)."""
    at = new_app()
    at.switch_page("pages/models.py").run()
    use_local_model(at, tiny_classifier_dir, "classification")
    picker = at.selectbox(key="bm_classification")
    assert picker.value == "max_accuracy_drop" and picker.options == ["accuracy drop", "label agreement"]
    picker.set_value("min_label_agreement").run()
    no_exceptions(at)
    assert [n.key for n in at.number_input if n.key.startswith("b_")] == ["b_min_label_agreement"]
    assert at.number_input(key="b_min_label_agreement").value == pytest.approx(0.99)
    at.number_input(key="b_min_label_agreement").set_value(0.98).run()
    at.switch_page("pages/run.py").run()
    no_exceptions(at)
    assert any("with label agreement ≥ 0.98" in m for m in texts(at.markdown)), texts(at.markdown)
    at.switch_page("pages/models.py").run()
    at.selectbox(key="bm_classification").set_value("max_accuracy_drop").run()
    at.switch_page("pages/run.py").run()
    assert any("with accuracy drop ≤ 1 pt" in m for m in texts(at.markdown)), texts(at.markdown)


def test_compare_moves_the_budget_to_another_measure_and_the_recommendation_follows():
    from core.storage import history

    rep = embedding_report()
    for r, agreement in zip(rep["results"], (1.0, 0.90, 0.97)):
        r["quality"]["retrieval_agreement"] = agreement
    run_id = history.save_run(rep)
    at = new_app()
    at.query_params["run"] = run_id
    at.run()
    assert at.selectbox(key="cmp_measure").value == "min_cosine"
    assert {m.label: m.value for m in at.metric}["Recommended"] == "onnx-int8"
    at.selectbox(key="cmp_measure").set_value("min_retrieval_agreement").run()
    no_exceptions(at)
    assert at.number_input(key="cmp_budget_min_retrieval_agreement").value == pytest.approx(0.95)
    success = texts(at.success)[0]
    assert success.startswith("**Recommended:** **dynamic-int8**") and "retrieval agreement 0.9700 >= 0.95" in success, success
    assert "onnx-int8 is faster still but its retrieval agreement 0.9000 < 0.95" in success
    assert any("the saved run recommended **onnx-int8** with cosine fidelity ≥ 0.99" in c for c in texts(at.caption))
    assert recommended_on_chart(at) == "dynamic-int8"


def test_calibration_source_is_chosen_on_models_and_kept_in_the_comparison():
    """"Calibrate static int8 on": the bundled sample by default (the comparison, and so its saved-run key, unchanged);
    this run's own texts when chosen, which the Run page states."""
    at = new_app()
    at.switch_page("pages/models.py").run()
    no_exceptions(at)
    choice = at.selectbox(key="hw_calibration")
    assert choice.value == "sample" and choice.options == ["the bundled sample (held out)", "this run's own texts"]
    at.switch_page("pages/run.py").run()
    assert not any("calibrates on this run's own texts" in m for m in texts(at.markdown))
    at.switch_page("pages/models.py").run()
    at.selectbox(key="hw_calibration").set_value("data").run()
    at.switch_page("pages/run.py").run()
    no_exceptions(at)
    assert any("Static int8 calibrates on this run's own texts" in m for m in texts(at.markdown)), texts(at.markdown)
    assert at.session_state["hw_calibration"] == "data"


def test_weights_page_runs_the_accuracy_aware_search(tiny_classifier_dir):
    import json

    from core import charts

    at = new_app()
    at.run()
    use_local_model(at, tiny_classifier_dir, "classification")
    at.switch_page("pages/weights.py").run()
    no_exceptions(at)
    assert "Accuracy-aware mixed precision (ONNX Runtime int8)" in texts(at.subheader)
    assert at.selectbox(key="w_mixed_target").value == "0.995"
    at.selectbox(key="w_mixed_target").set_value("0.99999").run()   # a random tiny model is ~0.9999 all-int8: this target keeps nodes in fp32
    assert any("not built" in i and "about a minute for MiniLM" in i for i in texts(at.info)), texts(at.info)
    at.button(key="w_mixed_build").click().run()
    poll(at, lambda a: len(a.get("plotly_chart")) == 4 or a.error, timeout=180, every=0.5)
    assert not at.error, texts(at.error)
    summary = [c for c in texts(at.caption) if "weight nodes" in c]
    assert summary and re.match(r"[1-4] of 8 weight nodes stay fp32 \(L[01] ", summary[0]), summary   # which first: the tiny model's, by chance
    specs = {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    sens = next(s for s in specs.values() if s["layout"]["title"]["text"].startswith("Sensitivity of each weight node"))
    bar = sens["data"][-1]
    assert len(bar["y"]) == 8 and "L0 attention" in bar["y"] and "L1 output.dense" in bar["y"]
    kept = next(s for s in specs.values() if s["layout"]["title"]["text"].startswith("Fidelity as nodes"))
    assert any(t["name"] == "target 0.99999" and t["line"]["dash"] == "dash" for t in kept["data"])
    assert charts.KEPT_FP32_COLOR in bar["marker"]["color"] and charts.INT8_NODE_COLOR in bar["marker"]["color"]


def test_compare_shows_throughput_spread_padding_and_verdict():
    """A saved run with repeated-pass throughput: the batching chart has whiskers, padding and the verdicts, and the
    caption under it gives the numbers in words; a run saved before (no spread) still opens (the budget test above)."""
    import json

    from core.storage import history
    from test_charts import SPREADS, throughput

    rep = embedding_report()
    spread = throughput(SPREADS, batch=32)
    for r, s in zip(rep["results"], spread["results"]):
        r["dataset_throughput"] = s["dataset_throughput"]
    run_id = history.save_run(rep)
    at = new_app()
    at.query_params["run"] = run_id
    at.run()
    no_exceptions(at)
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Sorted against unsorted" in json.loads(c.proto.spec)["layout"]["title"]["text"])
    assert spec["layout"]["title"]["text"].endswith("batch 32)")
    verdicts = {a["x"]: a["text"] for a in spec["layout"]["annotations"] if a.get("name") == "verdict"}
    assert verdicts == {"fp32": "sorted 1.25x", "onnx-int8": "no difference within noise", "dynamic-int8": "sorted 1.33x"}
    assert [t["name"] for t in spec["data"][:2]] == ["sorted by length, padding 5%", "file order (unsorted), padding 38%"]
    assert all(t["error_y"]["visible"] for t in spec["data"][2:])
    caption = next(c for c in texts(at.caption) if c.startswith("Whole dataset (120 texts) at batch 32"))
    assert "**onnx-int8**: 300 [250-320] / 290 [240-310]; no difference within noise" in caption
    assert "**dynamic-int8**: 200 [190-210] / 150 [140-160]; sorted 1.33x faster; padding 38% of tokens unsorted -> 5% sorted." in caption


def test_compare_gives_the_recommendation_at_every_batch_size_for_the_budget_shown():
    """Issue 28: the winner changes with the batch size; Compare names it at each, and follows the budget moved."""
    from core.reporting.recommend import recommend
    from core.storage import history

    run_id = history.import_report((ROOT / "tests" / "data" / "embedding_minilm_headline.json").read_bytes(), "batches.json")
    report = history.load_run(run_id)
    at = new_app()
    at.query_params["run"] = run_id
    at.run()
    no_exceptions(at)

    def shown() -> str:
        return next(m for m in texts(at.markdown) if "Recommended at each batch size" in m)

    def expected(budget: float) -> str:
        picks = [recommend(report["results"], "embedding", {"min_cosine": budget}, b) for b in (1, 32)]
        return " · ".join(f"batch {b}: **{r['variant']}**" for b, r in zip((1, 32), picks))

    assert shown().endswith(expected(0.99)), (shown(), expected(0.99))
    at.number_input(key="cmp_budget_min_cosine").set_value(0.9999).run()
    assert shown().endswith(expected(0.9999)) and expected(0.9999) != expected(0.99), (shown(), expected(0.9999))
