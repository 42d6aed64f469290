"""Job runners for queue tests, loaded by the job child from this file (``tests/slow_runner.py:<name>``): they stand in
for an evaluation where only the queue's behaviour is under test (admission, wall time, messages)."""

from __future__ import annotations

import time


def sleep_runner(config, progress, should_stop):
    """Runs for ``config['seconds']`` (stopping early when cancelled), reporting progress once a second."""
    end = time.time() + float(config.get("seconds", 30))
    while time.time() < end:
        if should_stop():
            raise RuntimeError("stopped")
        progress({"message": "sleeping", "fraction": 0.5})
        time.sleep(0.2)
    return {"slept": True}


def path_error_runner(config, progress, should_stop):
    """Fails like a real evaluation that names a server path in its error."""
    from core.errors import QlabError

    raise QlabError(f"Data file '{config['path']}' cannot be read (permission denied).")


def crash_runner(config, progress, should_stop):
    """A bug (not a QlabError) whose message carries a server path."""
    raise FileNotFoundError(f"[Errno 2] No such file or directory: '{config['path']}'")
