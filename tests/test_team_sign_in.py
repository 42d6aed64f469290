"""Sign-in for a team (issue 20) against a real OpenID Connect provider on 127.0.0.1 (``oidc-provider-mock``), with a
real ``streamlit run`` server (``QLAB_AUTH=oidc``, its ``[auth]`` block in a secrets file of the test's own) and
headless Chromium: people sign in through the provider's form, own runs, share them with links they can withdraw,
and every action lands in the audit log with the right person."""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from pathlib import Path

import pytest

from conftest import chromium_or_skip

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import load_sessions

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DATA = Path(__file__).parent / "data"
PEOPLE = {"alice": "alice@example.com", "bob": "bob@example.com", "eve": "eve@elsewhere.org"}


@pytest.fixture(scope="module")
def team_lab(tmp_path_factory):
    chromium_or_skip("the sign-in test")
    import httpx
    import oidc_provider_mock
    from playwright.sync_api import sync_playwright

    from core.access.identity import person_key
    from core.storage import history

    store = tmp_path_factory.mktemp("team-store")
    with oidc_provider_mock.run_server_in_thread() as provider:
        issuer = f"http://localhost:{provider.server_port}"
        for sub, email in PEOPLE.items():
            assert httpx.put(f"{issuer}/users/{sub}", json={"email": email, "name": sub.title()}).status_code == 204
        run_id = history.import_report((DATA / "embedding_minilm_headline.json").read_bytes(), "alice.json", root=store,
                                       owner=person_key("alice"), owner_email=PEOPLE["alice"])   # Alice's own, unshared run
        port = load_sessions.free_port()
        secrets_file, cookie_secret = store / "secrets.toml", secrets.token_hex(24)
        secrets_file.write_text(f'[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\ncookie_secret = "{cookie_secret}"\n'
                                f'client_id = "qlab"\nclient_secret = "{secrets.token_hex(8)}"\n'
                                f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n')
        env = {"QLAB_AUTH": "oidc", "QLAB_ALLOWED_DOMAINS": "example.com", "QLAB_WORKER_POOL": "0"}
        with load_sessions.server(store, env, ["--secrets.files", str(secrets_file)], port=port) as (url, _pid, log_path):
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(load_sessions.CHROMIUM), headless=True, args=load_sessions.CHROMIUM_ARGS)
                try:
                    yield {"url": url, "browser": browser, "store": store, "run_id": run_id, "issuer": issuer, "log": log_path,
                           "cookie_secret": cookie_secret}
                finally:
                    browser.close()


LAB_PAGES = ["Data", "Models & variants", "Run", "Compare", "Weights", "Playground", "History & share", "Store"]
# what Streamlit showed signed out when the script stopped before st.navigation: every file of pages/ and app.py
MODULE_WORDS = {"app", "auth", "compare", "data", "history", "jobwatch", "models", "playground", "run", "shared", "store", "weights"}


def nav_links(page) -> list[str]:
    """The labels of the sidebar's navigation links ([] without sidebar navigation); each link's text is its icon's
    ligature word, then its label."""
    return [text.strip().split("\n")[-1].strip() for text in page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()]


def names_nothing_of_the_lab(page) -> bool:
    """No navigation link, nor any other link on the page, names a page or a module of the lab (asserted); returns
    whether the page also has no sidebar navigation at all."""
    labels = nav_links(page)
    hrefs = [h for h in page.locator("a[href]").evaluate_all("els => els.map(e => e.getAttribute('href'))") if not h.startswith("#")]
    named = {w for text in labels + hrefs for w in re.findall(r"[a-z]+", text.lower())} & MODULE_WORDS
    assert not named, (named, labels, hrefs)
    return page.locator('[data-testid="stSidebarNav"]').count() == 0


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text(timeout=30_000)


def sign_in_page(page) -> bool:
    """The page shows the sign-in page and nothing of the lab."""
    page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
    return "sign in with your team's account" in main_text(page).lower() and page.get_by_text("Models & variants").count() == 0


def signed_in(lab, sub: str):
    """A fresh browser context signed in as ``sub`` through the provider's form; returns (context, page)."""
    context = lab["browser"].new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(lab["url"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(lab["issuer"])))
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(re.escape(lab["url"])))
    return context, page


def resigned(cookies: list[dict], secret: str, age_s: float) -> list[dict]:
    """The sign-in cookies, signed again with the lab's own secret as if ``age_s`` seconds ago (Streamlit signs them
    with itsdangerous, which stamps the signing time): how a stolen-then-expired cookie would look."""
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer
    from streamlit.web.server.starlette.starlette_app_utils import decode_signed_value

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_s)

    out = []
    for c in cookies:
        if c["name"].startswith("_streamlit_user"):
            value = decode_signed_value(secret, c["name"], c["value"]).decode()
            c = {**c, "value": URLSafeTimedSerializer(secret, salt=c["name"], signer=Then).dumps(value)}
        out.append(c)
    return out


def audit_lines(store: Path) -> list[dict]:
    path = store / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_people_sign_in_own_runs_and_share_links_they_can_withdraw(team_lab):
    from core.access.identity import person_key

    lab, url, run_id = team_lab, team_lab["url"], team_lab["run_id"]
    browser = lab["browser"]

    # signed out, plain HTTP: every address gives Streamlit's static page shell and nothing of the lab's data
    import httpx

    for path in ("/", "/run", f"/compare?run={run_id}", "/history", "/_stcore/health"):
        response = httpx.get(url + path, timeout=30)
        assert response.status_code == 200 and run_id not in response.text and "minilm" not in response.text.lower(), path

    # signed out: every page is the sign-in page, the run's own address too, with no navigation at all: neither a page
    # of the lab nor a file of pages/ is named (Streamlit listed them all when the script stopped before st.navigation),
    # and the address asked for is kept without a "Page not found" dialog
    anonymous = browser.new_context().new_page()
    for path in ("", "/run", f"/compare?run={run_id}", "/history", "/jobwatch"):
        anonymous.goto(url + path)
        assert sign_in_page(anonymous), (path, main_text(anonymous))
        anonymous.wait_for_timeout(500)   # anything the server sends after the page (a late navigation) has arrived
        assert names_nothing_of_the_lab(anonymous), path
        assert anonymous.locator('[data-testid="stSidebar"]').count() == 0, path   # nothing to show in a sidebar
        assert "Page not found" not in anonymous.locator("body").inner_text(), path
        assert anonymous.url == url + (path or "/"), (path, anonymous.url)

    # Alice signs in through the provider and sees her run under "Mine"
    alice_ctx, alice = signed_in(lab, "alice")
    alice.get_by_text("Signed in as alice@example.com").wait_for()
    assert nav_links(alice) == LAB_PAGES   # signed in, the sidebar lists the lab's pages, and nothing else
    alice.goto(f"{url}/compare?run={run_id}")
    alice.get_by_role("heading", name="Compare").wait_for()
    assert "private to its owner" not in main_text(alice)
    load_sessions.goto_page(alice, "History & share", "History & share")
    alice.get_by_text(f"Run {run_id[:8]}", exact=True).wait_for()
    assert alice.get_by_role("button", name="Delete").count() == 1   # her own run

    # a forged session cookie (her real one with its signature altered, or one made up) signs nobody in
    cookie = next(c for c in alice_ctx.cookies() if c["name"] == "_streamlit_user")
    for value in (cookie["value"][:-4] + ("AAAA" if not cookie["value"].endswith("AAAA") else "BBBB"), "forged." + secrets.token_hex(20)):
        forged_ctx = browser.new_context()
        forged_ctx.add_cookies([{**cookie, "value": value}])
        forged = forged_ctx.new_page()
        forged.goto(url + "/history")
        assert sign_in_page(forged), main_text(forged)
        forged_ctx.close()

    # an expired one (her own, signed by the lab 40 days ago; Streamlit keeps them 30) signs nobody in either, where
    # the same cookie signed now does: the age alone turns it away
    for age_days, expect_signed_in in ((0, True), (40, False)):
        aged_ctx = browser.new_context()
        aged_ctx.add_cookies(resigned(alice_ctx.cookies(), lab["cookie_secret"], age_days * 86400))
        aged = aged_ctx.new_page()
        aged.goto(url + "/history")
        if expect_signed_in:
            aged.get_by_text("Signed in as alice@example.com").wait_for(timeout=60_000)
        else:
            assert sign_in_page(aged), main_text(aged)
        aged_ctx.close()

    # Bob, a colleague: Alice's run is private to her until she shares it
    bob_ctx, bob = signed_in(lab, "bob")
    bob.goto(f"{url}/compare?run={run_id}")
    bob.get_by_text("is private to its owner").wait_for()
    load_sessions.goto_page(bob, "History & share", "History & share")
    bob.get_by_text("No saved runs yet").wait_for()

    # Alice makes a link for signed-in colleagues
    alice.get_by_role("button", name="Create link").click()
    code = alice.locator('[data-testid="stCode"]', has_text="?link=").first
    code.wait_for()
    link = re.search(r"\S*\?link=[A-Za-z0-9_-]+", code.inner_text()).group(0)

    # it opens for Bob, read-only: no delete, no sharing, no variant downloads
    bob.goto(link)
    bob.get_by_role("heading", name="Compare").wait_for()
    assert "withdrawn" not in main_text(bob) and "private" not in main_text(bob)
    load_sessions.goto_page(bob, "History & share", "History & share")
    bob.locator('[data-testid="stButtonGroup"]').get_by_text("Everyone's", exact=True).click()   # the runs colleagues shared
    bob.get_by_text("Only a run's owner (or an admin) can delete it.").wait_for()
    bob.get_by_text("Only the run's owner can share it").wait_for()
    assert bob.get_by_role("button", name="Delete").count() == 0 and bob.get_by_role("button", name="Create link").count() == 0

    # not for a signed-out browser: that gets the sign-in page
    anonymous.goto(link)
    assert sign_in_page(anonymous)

    # Alice withdraws it: it opens nothing any more
    alice.get_by_role("button", name="Revoke").click()
    alice.get_by_text("No live link").wait_for()
    late_ctx, late = signed_in(lab, "bob")
    late.goto(link)
    late.get_by_text("withdrawn by its owner").wait_for()

    # Alice starts a comparison; Bob, given the address of her job, follows its progress but cannot cancel it; she can
    load_sessions.goto_page(alice, "Run", "Run")
    alice.get_by_role("button", name="Run comparison").click()
    alice.wait_for_url(re.compile(r"[?&]job=[0-9a-f]{32}"))
    job_id = re.search(r"job=([0-9a-f]{32})", alice.url).group(1)
    alice.get_by_role("button", name="Cancel").wait_for()
    bob.goto(f"{url}/run?job={job_id}")
    bob.get_by_text(re.compile(r"^(Queued|Waiting|Running for)")).first.wait_for()
    assert bob.get_by_role("button", name="Cancel").count() == 0, main_text(bob)
    alice.get_by_role("button", name="Cancel").click()
    alice.get_by_text("Cancelled. Nothing was saved").wait_for()
    bob.get_by_text("Cancelled. Nothing was saved").wait_for()   # he sees it end, by her hand

    # signing out returns to the sign-in page
    # (Streamlit drops its cookie and sends the browser to the provider's end-session page, which asks to confirm)
    alice.get_by_role("button", name="Sign out").click()
    alice.get_by_role("button", name="End session").click()
    alice.wait_for_url(re.compile(re.escape(url)))
    assert sign_in_page(alice)
    assert not any(c["name"] == "_streamlit_user" for c in alice_ctx.cookies())

    # someone from a domain the lab does not admit is refused in one line, with no navigation either
    eve_ctx, eve = signed_in(lab, "eve")
    eve.get_by_text("is not in a domain this lab admits (example.com)").wait_for()
    assert eve.get_by_text("Models & variants").count() == 0 and names_nothing_of_the_lab(eve)

    # every action is in the audit log, with the right person
    time.sleep(1)
    lines = audit_lines(lab["store"])
    who = {sub: person_key(sub) for sub in PEOPLE}
    did = {(line["action"], line["who"]) for line in lines}
    assert {("imported", who["alice"]), ("signed-in", who["alice"]), ("signed-in", who["bob"]), ("shared", who["alice"]),
            ("revoked", who["alice"]), ("refused", who["eve"]), ("ran", who["alice"]), ("cancelled", who["alice"])} <= did, lines
    assert not any(line["action"] == "cancelled" and line["who"] != who["alice"] for line in lines), lines
    assert not any(line["action"] == "signed-in" and line["who"] == who["eve"] for line in lines)
    shared = next(line for line in lines if line["action"] == "shared")
    assert shared["target"] == run_id and shared["email"] == PEOPLE["alice"] and shared["audience"] == "team"
    for ctx in (alice_ctx, bob_ctx, late_ctx, eve_ctx):
        ctx.close()
