"""The one wire format between processes (core/execution/wire.py): errors of every kind survive the round trip, the
encoder classifies by isinstance, and a child's event stream cannot be corrupted by output printed below Python."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from core.engine.evaluate import WORKER, WorkerError, run_worker
from core.errors import DataError, QlabError, first_line
from core.execution import events, local, ray_cluster, wire

RECORDS = [wire.WireError(wire.USER, "Your data has no text column; rename it to text."),
           wire.WireError(wire.BUG, "ZeroDivisionError: division by zero"),
           wire.WireError(wire.CANCELLED, "cancelled"),
           wire.WireError(wire.NODE_LOST, "node lost during onnx-int8 (latency)")]
RAISES = {wire.USER: QlabError, wire.BUG: wire.RemoteError, wire.CANCELLED: wire.Cancelled, wire.NODE_LOST: wire.NodeLost}


@pytest.mark.parametrize("record", RECORDS, ids=[r.kind for r in RECORDS])
def test_every_kind_round_trips_and_is_raised_again_as_itself(record):
    sent = json.loads(json.dumps(wire.error_payload(record)))     # what a result file or a Ray reply carries
    assert sent == {"error": {"kind": record.kind, "message": record.message}}
    got = wire.error_in(sent)
    assert got == record and wire.WireError.from_dict(record.to_dict()) == record
    with pytest.raises(RAISES[record.kind]) as raised:
        wire.raise_error(got)
    assert str(raised.value) == record.message
    assert got.for_user == (record.kind in (wire.USER, wire.NODE_LOST))


def test_the_decoder_takes_the_callers_wording_for_a_bug_only():
    def bug(message):
        return QlabError(f"The comparison failed on edge ({message}); see that node's Ray logs.")

    with pytest.raises(QlabError, match=r"^The comparison failed on edge \(KeyError: 'x'\)"):
        wire.raise_error({"kind": wire.BUG, "message": "KeyError: 'x'"}, bug=bug)
    with pytest.raises(QlabError, match="^bad input$"):
        wire.raise_error({"kind": wire.USER, "message": "bad input"}, bug=bug)
    with pytest.raises(WorkerError, match="^OSError: disk full$"):
        wire.raise_error(wire.WireError(wire.BUG, "OSError: disk full"), bug=WorkerError)


def test_a_result_is_not_an_error_and_unreadable_records_are_bugs():
    assert wire.error_in({"variant": "fp32", "latency": []}) is None and wire.error_in(None) is None
    assert wire.error_in({"error": "a bare string"}) == wire.WireError(wire.BUG, "a bare string")
    assert wire.error_in({"error": {"kind": "martian", "message": "m"}}) == wire.WireError(wire.BUG, "m")
    assert wire.error_in({"error": {"kind": wire.CANCELLED}}) == wire.WireError(wire.CANCELLED, "cancelled")


def test_classification_is_by_isinstance():
    class StopRequested(wire.Cancelled):   # a Cancelled by another name is still a cancel
        pass

    assert wire.error_from_exception(StopRequested("the user pressed stop")) == wire.WireError(wire.CANCELLED, "cancelled")
    assert events.Cancelled is wire.Cancelled and ray_cluster.NodeLost is wire.NodeLost   # one class, wherever it is imported from
    assert wire.error_from_exception(DataError("Data file 'x.csv'\nhas no rows.")) == wire.WireError(wire.USER, "Data file 'x.csv' has no rows.")
    assert wire.error_from_exception(wire.NodeLost("node lost during fp32 (quality)")).kind == wire.NODE_LOST
    multi = RuntimeError("  CUDA kernel failed   \n  at line 3\nTraceback (most recent call last): ...")
    assert wire.error_from_exception(multi) == wire.WireError(wire.BUG, "RuntimeError: CUDA kernel failed")
    assert wire.error_from_exception(KeyError()) == wire.WireError(wire.BUG, "KeyError")              # no message: the class name
    long = wire.error_from_exception(ValueError("x" * 1000))
    assert long.message == "ValueError: " + "x" * wire.MESSAGE_LIMIT
    assert wire.error_from_exception(RuntimeError("stopped"), cancelled=True).kind == wire.CANCELLED  # asked to stop: a cancel


def test_first_line():
    assert first_line("  one  \ntwo") == "one" and first_line("") == "" and first_line(OSError("abcdef"), 3) == "abc"
    assert wire.describe(ValueError("bad\nworse"), 160) == "ValueError: bad"


def test_a_c_level_write_to_fd_1_cannot_corrupt_the_event_stream(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import os, subprocess, sys
        sys.path.insert(0, {str(local.PROJECT_ROOT)!r})
        from core.execution.wire import EventStream
        stream = EventStream()
        os.write(1, b"garbage from C, no newline")
        stream.send({{"phase": "quality", "fraction": 0.5, "message": "first"}})
        print("a print from Python", flush=True)
        subprocess.run([sys.executable, "-c", "import os; os.write(1, b'a grandchild inherits fd 1')"], check=True)
        os.write(1, b"@@qlab {{not json")
        stream.send({{"phase": "done", "fraction": 1.0, "message": "second"}})
        os.write(1, b"garbage again")
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [wire.decode(line) for line in lines] == [{"phase": "quality", "fraction": 0.5, "message": "first"},
                                                      {"phase": "done", "fraction": 1.0, "message": "second"}]
    for garbage in ("garbage from C", "a print from Python", "a grandchild inherits fd 1", "garbage again"):
        assert garbage in proc.stderr


def test_the_measuring_worker_sends_each_kind_through_the_file_it_writes(tmp_path):
    """core.engine.runner encodes, core.engine.evaluate.run_worker decodes: a bug comes back as WorkerError, a user error per build."""
    with pytest.raises(WorkerError, match=r"^KeyError: 'source'$"):
        run_worker({"mode": "measure", "variant": "fp32", "threads": 1}, tmp_path)   # a job without a source: a bug
    source = {"name": "m", "kind": "local", "path": str(tmp_path), "task": "embedding", "fingerprint": "f"}
    result = run_worker({"mode": "build", "variant": "fp16", "variants": ["fp16"], "threads": 1, "device": "cpu", "max_length": 16,
                         "source": source}, tmp_path)
    error = wire.error_in(result["builds"]["fp16"])
    assert error.kind == wire.USER and error.message.startswith("Variant 'fp16' cannot run here")


@pytest.mark.parametrize("raised,kind,state", [(DataError("no text column"), wire.USER, "failed"),
                                               (ValueError("bad shape\nmore"), wire.BUG, "failed"),
                                               (wire.Cancelled("Evaluation cancelled."), wire.CANCELLED, "cancelled")],
                         ids=["user", "bug", "cancelled"])
def test_the_ray_node_runner_replies_in_the_wire_format(monkeypatch, raised, kind, state):
    import core.engine.evaluate

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(core.engine.evaluate, "run_evaluation", fail)
    node = ray_cluster.NodeRunner()
    node._run({"task": "embedding", "model": "m", "variants": ["fp32"]}, None, WORKER)   # the actor's thread, run here
    reply = node.poll(0)
    assert reply["state"] == state and reply["result"] is None
    assert wire.error_in(reply) == wire.error_from_exception(raised) and wire.error_in(reply).kind == kind
