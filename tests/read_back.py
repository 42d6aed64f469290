"""Every report the lab writes, it reads: one check, used by the tests that make real reports (issue 26).

``assert_reads_back(report)`` takes a report as a run produced it and checks, as a person would meet it:
- the lab's own writer accepts it (``checked_json``: the import's strict schema) and the text parses back;
- it is saved as a run (``history.save_run``, the dashboard's path) and loads again;
- its JSON export imports through History (``history.import_report``, the strict check a colleague's upload gets);
- the imported run opens on Compare in the real app (AppTest), with no exception and no error box, and the page names
  every hardware target of a cross-hardware report.
"""

from __future__ import annotations

import json

from core.reporting.schema import check, checked_json
from core.storage import history
from test_app import new_app, no_exceptions, texts


def assert_reads_back(report: dict) -> str:
    """The checks above; returns the imported run's id."""
    assert check(json.loads(checked_json(report)), strict=True) is None
    saved = history.save_run(report)
    loaded = history.load_run(saved)
    assert loaded["results"] and loaded["task"] == report["task"]
    imported = history.import_report(history.export_json(loaded).encode(), "colleague.json")
    assert imported != saved and history.load_run(imported)["run_id"] == imported

    at = new_app()
    at.query_params["run"] = imported
    at.run()
    no_exceptions(at)
    assert not at.error, texts(at.error)
    assert at.session_state["current_run"] == imported
    assert texts(at.title) == ["Compare"], texts(at.title)
    assert at.get("plotly_chart"), "Compare drew no chart"
    if report.get("hardware"):   # a cross-hardware report: its targets side by side, each one's detailed charts on offer
        assert "Across hardware targets" in texts(at.subheader), texts(at.subheader)
        shown = " ".join(str(o) for o in at.selectbox(key="cmp_target").options)
        assert all(t["id"] in shown or t["name"] in shown for t in report["hardware"]), shown
    return imported
