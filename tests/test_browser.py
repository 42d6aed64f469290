"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `streamlit run app.py`.

Uploads a file (and a bad one), sets up a small comparison through the widgets, runs it, waits for the charts,
and saves screenshots to docs/screenshots/. Needs /usr/bin/chromium (scripts/install_chromium.sh installs it):
without it the test fails under CI=true and is skipped, saying why, elsewhere.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import chromium_or_skip

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import load_sessions
from load_sessions import CHROMIUM, CHROMIUM_ARGS, goto_page, remove_tag

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
SENTENCES = [
    "Browsers render pages from HTML and CSS.", "The ferry crossed the bay in twenty minutes.", "Int8 weights take a quarter of the space.",
    "A heron waited at the edge of the pond.", "The orchestra tuned before the concert.", "Snow closed the mountain pass overnight.",
    "The library extended its opening hours.", "Tomatoes ripen faster in the sun.", "The committee approved the new budget.",
    "Engineers measured latency on two cores.",
]


@pytest.fixture(scope="module")
def server():
    """``streamlit run app.py`` on the session's store (this machine alone, not hosted), as the load test starts it."""
    chromium_or_skip()
    with load_sessions.server(Path(os.environ["QLAB_CACHE_DIR"])) as (url, _, _):
        yield url


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="qlab-chromium-"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1000}, device_scale_factor=1,
        )
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        yield pg
        context.close()


def shot(page, name: str, height: int | None = None) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    if height:  # Streamlit scrolls inside its own container: grow the viewport to capture the whole page
        page.set_viewport_size({"width": 1440, "height": height})
        page.wait_for_timeout(1000)
        content = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMainBlockContainer\"]');"
                                " return m ? Math.ceil(m.getBoundingClientRect().height) + 140 : 0 }")
        if content and abs(content - height) > 80:
            page.set_viewport_size({"width": 1440, "height": max(1000, min(content, 6000))})
        page.wait_for_timeout(1000)
    page.screenshot(path=str(path))
    if height:
        page.set_viewport_size({"width": 1440, "height": 1000})
    assert path.stat().st_size > 20_000
    return path


def no_traceback(page) -> None:
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and not page.locator('[data-testid="stException"]').count(), body[-2000:]


def test_upload_run_and_compare_in_chromium(page, server, tmp_path):
    from playwright.sync_api import expect

    started = time.time()
    # the fresh server's very first request is a page URL: the frame (sidebar, navigation) still wraps the page
    page.goto(server + "/run")
    page.get_by_role("heading", name="Run", exact=True).wait_for()
    page.locator('[data-testid="stSidebar"]').get_by_text("Hardware").wait_for()
    assert not page.get_by_text("Page not found").count()
    page.goto(server + "/")
    page.get_by_role("heading", name="Data", exact=True).wait_for()
    assert page.locator('[data-testid="stSidebar"]').get_by_text("Hardware").is_visible()

    # a bad file first: one clear line, nothing selected
    bad = tmp_path / "scan.csv"
    bad.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    page.locator('[data-testid="stFileUploader"] input[type=file]').set_input_files(str(bad))
    alert = page.locator('[data-testid="stAlertContentError"]').filter(has_text="scan.csv")
    expect(alert).to_contain_text("is a PDF, not text")
    no_traceback(page)

    # then a good one
    good = tmp_path / "browser_sentences.csv"
    good.write_text("text\n" + "\n".join(SENTENCES) + "\n", encoding="utf-8")
    page.locator('[data-testid="stFileUploader"] input[type=file]').set_input_files(str(good))
    page.get_by_text("Loaded browser_sentences.csv", exact=False).wait_for()
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(str(len(SENTENCES)))
    shot(page, "data.png", height=1300)

    # a small comparison, chosen through the widgets
    goto_page(page, "Models & variants", "Models & variants")
    remove_tag(page, "Variants to compare", "onnx-int8")
    remove_tag(page, "Batch sizes", "8")
    remove_tag(page, "Sequence lengths", "64")
    page.get_by_text(re.compile(r"Will compare:\s*fp32\s*,\s*dynamic-int8\s*$")).wait_for()
    shot(page, "models.png", height=1700)

    goto_page(page, "Run", "Run")
    page.get_by_text("browser_sentences.csv (uploaded, 10 rows)", exact=False).wait_for()
    page.get_by_role("button", name="Run comparison").click()
    page.get_by_text(re.compile(r"Running for \d+ s|Queued|Waiting")).first.wait_for(timeout=60_000)
    try:  # a moment with a phase in progress makes the better picture; a fast run may already be past it
        page.get_by_text(re.compile(r"^(building|loading|quality|latency|whole-dataset)")).first.wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001 - only the screenshot's moment depends on it
        pass
    shot(page, "run-progress.png")
    page.get_by_text(re.compile(r"Finished in \d+ s")).wait_for(timeout=300_000)
    no_traceback(page)
    shot(page, "run.png")

    page.get_by_role("link", name="See the comparison").click()
    page.get_by_role("heading", name="Compare", exact=True).wait_for()
    plots = page.locator(".js-plotly-plot")
    deadline = time.time() + 60
    while plots.count() < 6 and time.time() < deadline:
        page.wait_for_timeout(500)
    assert plots.count() == 6, plots.count()   # and each timed cell's outputs against fp32's
    body = page.locator("body").inner_text()
    assert "Quality against latency" in body and "Model size on disk" in body and "Against the fp32 reference" in body
    assert "fp32 reference" in body and "dynamic-int8" in body
    assert re.search(r"\?run=[0-9a-f]{32}", page.url), page.url  # the address is the share link
    no_traceback(page)
    shot(page, "compare.png", height=3000)

    goto_page(page, "Weights", "Weights")
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=120_000)
    shot(page, "weights.png", height=1900)
    assert time.time() - started < 300


def test_cross_hardware_compare_in_chromium(page, server):
    """A comparison measured on two targets: the grouped speed-up chart, one recommendation per target, and the
    detailed charts following the target a person picks."""
    from core.storage import history
    from test_execution import cross_report

    run_id = history.save_run(cross_report())
    page.goto(f"{server}/?run={run_id}")
    page.get_by_role("heading", name="Across hardware targets").wait_for()
    page.locator(".js-plotly-plot .bars").first.wait_for(timeout=60_000)
    page.get_by_text("Speed-up against fp32 on each hardware target").first.wait_for(timeout=60_000)   # the chart's title (SVG)
    body = page.locator("body").inner_text()
    assert "Ship onnx-int8" in body and "Ship dynamic-int8" in body          # int8 pays off on one CPU, not the other
    picker = page.get_by_role("combobox", name="Detailed charts for")
    picker.scroll_into_view_if_needed()
    picker.click()
    page.get_by_role("option", name=re.compile("^arm-box")).click()
    page.get_by_text(re.compile(r"Recommended: dynamic-int8")).first.wait_for(timeout=60_000)
    no_traceback(page)


def test_generation_compare_in_chromium(page, server):
    """A generation run (recorded from benchmarks/generation.py on demo-gpt): time to first token and tokens/s by prompt
    length, the generated texts side by side, and decode time per token on the quality chart."""
    import json

    from core.storage import history

    report = json.loads((Path(__file__).parent / "data" / "generation_demo_gpt.json").read_text())
    run_id = history.save_run(report)
    page.goto(f"{server}/?run={run_id}")
    page.get_by_role("heading", name="Compare", exact=True).wait_for()
    page.get_by_text("Time to first token (batch 1)").first.wait_for(timeout=60_000)   # chart titles (SVG)
    page.get_by_text("Generated tokens per second (batch 1)").first.wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"^Quality against decode time per token")).first.wait_for(timeout=60_000)
    body = page.locator("body").inner_text()
    assert "Generated text" in body and "ms/token" in body
    assert page.locator(".js-plotly-plot").count() >= 6
    no_traceback(page)
    shot(page, "compare-generation.png", height=2600)
