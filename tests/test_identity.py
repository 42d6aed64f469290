"""Sign-in for a team (issue 20) without a browser: who a person is (core/access/identity.py), the audit log (core/storage/audit.py),
revocable share links (core/storage/links.py), and what owners and admins may do to runs and jobs with sign-in on
(core/access/hosting.py, core/storage/history.py, core/serving/jobs.py).

Every test uses its own store folder (``tmp_path``) or a queue of its own with a stand-in runner (tests/slow_runner.py),
so nothing here loads a model or starts Streamlit.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import run_cli
from core.access import hosting, identity
from core.errors import QlabError
from core.serving.jobs import JobQueue
from core.storage import audit, history, links

SLOW = f"{Path(__file__).resolve().parent / 'slow_runner.py'}"

ALICE = identity.Person(sub="google-oauth2|alice-0001", email="alice@example.com", name="Alice")
BOB = identity.Person(sub="google-oauth2|bob-0002", email="bob@example.com", name="Bob")
ROOT = identity.Person(sub="google-oauth2|root-0003", email="Admin@Example.com", name="Admin")


@pytest.fixture(autouse=True)
def plain_env(monkeypatch):
    """Each test starts with sign-in, admins, domains and hosted mode unset (as a local lab has them)."""
    for name in (identity.AUTH_ENV, identity.ADMINS_ENV, identity.DOMAINS_ENV, "QLAB_HOSTED"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def signed_in(monkeypatch):
    monkeypatch.setenv(identity.AUTH_ENV, "oidc")
    monkeypatch.setenv(identity.ADMINS_ENV, ROOT.email)


def one_line(text: str) -> str:
    assert text and "\n" not in text.strip(), f"not one line: {text!r}"
    return text


def report() -> dict:
    """A small valid report (the shape tests/slow_runner.py's report_runner saves)."""
    cell = {"batch_size": 1, "seq_len": 8, "p50_ms": 2.0, "p90_ms": 2.2, "p99_ms": 2.4, "mean_ms": 2.1, "std_ms": 0.1,
            "throughput_per_s": 500.0, "forward_p50_ms": 1.9}
    return {"task": "embedding", "model": "minilm", "run_id": uuid.uuid4().hex, "created": time.time(),
            "environment": {"cpu": "stand-in"}, "data": {"name": "sample", "rows": 1},
            "results": [{"variant": "fp32", "size_bytes": 1000, "quality": {"cosine_fidelity": 1.0}, "latency": [cell], "notes": []}]}


# -- identity -------------------------------------------------------------------------------------
def test_sign_in_is_off_unless_asked_for(monkeypatch):
    assert identity.auth_mode() == "none" and not identity.sign_in_required()
    monkeypatch.setenv("QLAB_AUTH", "none")
    assert not identity.sign_in_required()
    monkeypatch.setenv("QLAB_AUTH", " OIDC ")
    assert identity.sign_in_required()


def test_a_typo_in_qlab_auth_is_refused_not_ignored(monkeypatch):
    monkeypatch.setenv("QLAB_AUTH", "oicd")
    with pytest.raises(QlabError) as info:
        identity.sign_in_required()
    text = one_line(str(info.value))
    assert "QLAB_AUTH" in text and "'oicd'" in text and "oidc" in text
    with pytest.raises(QlabError):   # the policy asks the same question: a typo does not fall back to "no sign-in"
        hosting.policy()


def test_admins_are_parsed_from_commas_and_semicolons_in_any_case(monkeypatch):
    assert identity.admins() == set() and not identity.is_admin(ROOT)
    monkeypatch.setenv("QLAB_ADMINS", " Admin@Example.com; ops@example.com ,, OPS2@example.com ;")
    assert identity.admins() == {"admin@example.com", "ops@example.com", "ops2@example.com"}
    assert identity.is_admin(ROOT)   # ROOT's email is mixed case
    assert identity.is_admin(identity.Person(sub="x", email="OPS@EXAMPLE.COM"))
    assert not identity.is_admin(ALICE)
    assert not identity.is_admin(identity.Person(sub="no-email"))
    assert not identity.is_admin(None)


def test_allowed_domains_turn_away_other_domains_in_one_line(monkeypatch):
    stranger = identity.Person(sub="s", email="mallory@evil.test")
    assert identity.refusal(stranger) is None   # no domains set: everyone the provider signs in is admitted
    monkeypatch.setenv("QLAB_ALLOWED_DOMAINS", "example.com, @Partner.org")
    assert identity.allowed_domains() == {"example.com", "partner.org"}
    assert identity.refusal(ALICE) is None
    assert identity.refusal(identity.Person(sub="p", email="Pat@PARTNER.org")) is None
    text = one_line(identity.refusal(stranger))
    assert "mallory@evil.test" in text and "example.com, partner.org" in text
    # a look-alike domain or a person with no email is refused too
    assert identity.refusal(identity.Person(sub="l", email="eve@notexample.com")) is not None
    assert identity.refusal(identity.Person(sub="e", email="eve@example.com.evil.test")) is not None
    assert one_line(identity.refusal(identity.Person(sub="n")))


def test_may_act_on_owner_other_and_admin(monkeypatch):
    monkeypatch.setenv("QLAB_ADMINS", ROOT.email)
    assert identity.may_act_on(ALICE.owner, ALICE)
    assert not identity.may_act_on(ALICE.owner, BOB)
    assert identity.may_act_on(ALICE.owner, ROOT)
    assert not identity.may_act_on(None, BOB) and not identity.may_act_on("", BOB)   # ownerless: admins only
    assert identity.may_act_on(None, ROOT)
    assert not identity.may_act_on(ALICE.owner, None)   # nobody signed in


def test_person_key_never_holds_the_raw_sub():
    key = identity.person_key(ALICE.sub)
    assert key == ALICE.owner and key.startswith("person:")
    assert ALICE.sub not in key and "alice-0001" not in key and "google-oauth2" not in key
    assert identity.person_key(ALICE.sub) == key   # stable across calls (and processes: no salt per run)
    assert identity.person_key(BOB.sub) != key
    assert identity.person_key("abc") not in (identity.person_key("abd"), identity.person_key("ABC"))


# -- audit ----------------------------------------------------------------------------------------
def test_record_appends_lines_with_who_what_and_when(tmp_path):
    before = time.time()
    first = audit.record("ran", ALICE.owner, "job-1", email=ALICE.email, root=tmp_path, model="minilm", skipped=None)
    audit.record("deleted", ROOT.owner, "run-1", email=ROOT.email, root=tmp_path)
    raw = audit.audit_path(tmp_path).read_text(encoding="utf-8").splitlines()
    assert len(raw) == 2
    lines = [json.loads(r) for r in raw]
    assert lines[0] == first
    assert {k: lines[0][k] for k in ("action", "who", "email", "target", "model")} == \
        {"action": "ran", "who": ALICE.owner, "email": ALICE.email, "target": "job-1", "model": "minilm"}
    assert "skipped" not in lines[0]   # None details are left out
    assert before - 1 <= lines[0]["t"] <= time.time() + 1
    assert dt.datetime.fromisoformat(lines[0]["time"]).tzinfo is not None
    assert lines[1]["action"] == "deleted" and lines[1]["who"] == ROOT.owner
    assert audit.read(tmp_path) == lines
    assert audit.read(tmp_path, limit=1) == lines[1:]
    assert "alice@example.com" in audit.format_line(lines[0]) and "model=minilm" in audit.format_line(lines[0])


def test_unknown_action_is_refused_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record("hacked", ALICE.owner, "x", root=tmp_path)
    assert audit.read(tmp_path) == [] and not audit.audit_path(tmp_path).exists()


def _write_lines(root: Path, lines: list) -> None:
    path = audit.audit_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for line in lines:
            fh.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def test_read_since_filters_and_damaged_lines_are_skipped(tmp_path):
    now = time.time()
    _write_lines(tmp_path, [{"t": now - 7200, "action": "ran", "who": "old", "target": "a"},
                            "{not json at all",
                            "[1, 2, 3]",
                            '{"t": 1, "action": "ran", "who": "cut off',
                            {"t": now - 60, "action": "deleted", "who": "recent", "target": "b"}])
    audit.record("shared", BOB.owner, "c", email=BOB.email, root=tmp_path)
    assert [line["who"] for line in audit.read(tmp_path)] == ["old", "recent", BOB.owner]
    assert [line["who"] for line in audit.read(tmp_path, since=audit.parse_since("1h"))] == ["recent", BOB.owner]
    assert [line["who"] for line in audit.read(tmp_path, since=now + 3600)] == []


def test_parse_since_durations_dates_and_a_bad_value():
    now = 1_800_000_000.0
    assert audit.parse_since(None) is None and audit.parse_since("") is None
    assert audit.parse_since("30m", now) == now - 1800
    assert audit.parse_since("24h", now) == now - 86400
    assert audit.parse_since("7d", now) == now - 7 * 86400
    assert audit.parse_since("2026-12-01") == dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc).timestamp()
    assert audit.parse_since("2026-12-01T09:00") == dt.datetime(2026, 12, 1, 9, tzinfo=dt.timezone.utc).timestamp()
    for bad in ("foo", "7w", "-3d", "2026-13-01"):
        with pytest.raises(QlabError) as info:
            audit.parse_since(bad, now)
        text = one_line(str(info.value))
        assert "--since" in text and repr(bad) in text


def test_concurrent_records_never_interleave(tmp_path):
    errors = []

    def writer(n: int) -> None:
        try:
            for i in range(50):
                audit.record("ran", f"person:{n}", f"job-{n}-{i}", email=f"w{n}@example.com", root=tmp_path, pad="x" * 500)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    raw = audit.audit_path(tmp_path).read_text(encoding="utf-8").splitlines()
    assert len(raw) == 200
    lines = [json.loads(r) for r in raw]   # every line whole: a torn line would not parse
    assert sorted(line["target"] for line in lines) == sorted(f"job-{n}-{i}" for n in range(4) for i in range(50))
    assert all(line["email"] == f"w{line['who'].split(':')[1]}@example.com" for line in lines)


def test_cli_audit_prints_the_log_and_refuses_a_bad_since(tmp_path, monkeypatch):
    monkeypatch.setenv("QLAB_CACHE_DIR", str(tmp_path))
    audit.record("ran", ALICE.owner, "job-1", email=ALICE.email, model="minilm")   # the default root: QLAB_CACHE_DIR
    audit.record("revoked", BOB.owner, "run-9", email=BOB.email)
    assert audit.audit_path() == tmp_path / audit.FILE

    done = run_cli("audit", "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    lines = json.loads(done.stdout)
    assert [(line["action"], line["who"], line["target"]) for line in lines] == [("ran", ALICE.owner, "job-1"), ("revoked", BOB.owner, "run-9")]

    done = run_cli("audit", "--tail", "1", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 audit line in" in done.stdout and "bob@example.com" in done.stdout and "alice@example.com" not in done.stdout

    done = run_cli("audit", "--since", "foo", timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "--since 'foo'" in done.stderr


# -- share links ----------------------------------------------------------------------------------
def test_team_and_anyone_links(tmp_path):
    team = links.create("run-a", ALICE.owner, "team", email=ALICE.email, root=tmp_path)
    anyone = links.create("run-a", ALICE.owner, "anyone", email=ALICE.email, root=tmp_path)
    assert team != anyone
    assert links.resolve(team, signed_in=True, root=tmp_path) == "run-a"
    with pytest.raises(links.LinkError) as info:
        links.resolve(team, signed_in=False, root=tmp_path)
    assert "sign in" in one_line(str(info.value))
    assert links.resolve(anyone, signed_in=False, root=tmp_path) == "run-a"
    assert links.resolve(anyone, signed_in=True, root=tmp_path) == "run-a"
    assert links.audience_of(team, tmp_path) == "team" and links.audience_of(anyone, tmp_path) == "anyone"
    with pytest.raises(links.LinkError):
        links.create("run-a", ALICE.owner, "everyone", root=tmp_path)


def test_unknown_links_open_nothing(tmp_path):
    links.create("run-a", ALICE.owner, root=tmp_path)
    for token in ("no-such-token", "", None):
        with pytest.raises(links.LinkError) as info:
            links.resolve(token, signed_in=True, root=tmp_path)
        assert "does not exist" in one_line(str(info.value))
        assert links.audience_of(token, tmp_path) is None


def test_only_the_owner_or_an_admin_revokes(tmp_path):
    token = links.create("run-a", ALICE.owner, "team", email=ALICE.email, root=tmp_path)
    for by in (BOB.owner, None, ""):
        with pytest.raises(links.LinkError) as info:
            links.revoke(token, by=by, email=BOB.email, root=tmp_path)
        assert "Only the person who made this link" in one_line(str(info.value))
    assert links.resolve(token, signed_in=True, root=tmp_path) == "run-a"   # still works
    assert links.shared_run_ids(tmp_path) == {"run-a"}

    links.revoke(token, by=ALICE.owner, email=ALICE.email, root=tmp_path)
    with pytest.raises(links.LinkError) as info:
        links.resolve(token, signed_in=True, root=tmp_path)
    assert "withdrawn" in one_line(str(info.value))
    assert links.audience_of(token, tmp_path) is None

    other = links.create("run-b", ALICE.owner, "anyone", email=ALICE.email, root=tmp_path)
    links.revoke(other, by=ROOT.owner, admin=True, email=ROOT.email, root=tmp_path)
    with pytest.raises(links.LinkError, match="withdrawn"):
        links.resolve(other, signed_in=False, root=tmp_path)
    with pytest.raises(links.LinkError, match="No such link"):
        links.revoke("no-such-token", by=ALICE.owner, root=tmp_path)

    shared = [(line["action"], line["who"], line["email"], line["target"]) for line in audit.read(tmp_path)]
    assert shared == [("shared", ALICE.owner, ALICE.email, "run-a"),
                      ("revoked", ALICE.owner, ALICE.email, "run-a"),
                      ("shared", ALICE.owner, ALICE.email, "run-b"),
                      ("revoked", ROOT.owner, ROOT.email, "run-b")]   # the refused revokes wrote nothing
    assert audit.read(tmp_path)[0]["audience"] == "team" and audit.read(tmp_path)[2]["audience"] == "anyone"
    assert all(token not in json.dumps(line) for line in audit.read(tmp_path))   # only a prefix of a token is logged


def test_links_for_and_shared_run_ids_follow_revocation(tmp_path):
    first = links.create("run-a", ALICE.owner, "team", root=tmp_path)
    second = links.create("run-a", ALICE.owner, "anyone", root=tmp_path)
    other = links.create("run-b", BOB.owner, "team", root=tmp_path)
    assert [link["token"] for link in links.links_for("run-a", tmp_path)] == [second, first]   # newest first
    assert links.shared_run_ids(tmp_path) == {"run-a", "run-b"}
    links.revoke(second, by=ALICE.owner, root=tmp_path)
    assert [link["token"] for link in links.links_for("run-a", tmp_path)] == [first]
    assert {link["token"] for link in links.links_for("run-a", tmp_path, live_only=False)} == {first, second}
    links.revoke(other, by=BOB.owner, root=tmp_path)
    assert links.shared_run_ids(tmp_path) == {"run-a"}
    links.revoke(first, by=ALICE.owner, root=tmp_path)
    assert links.shared_run_ids(tmp_path) == set() and links.links_for("run-a", tmp_path) == []


# -- runs and jobs with sign-in on -----------------------------------------------------------------
def test_policy_follows_sign_in(monkeypatch):
    local = hosting.policy()
    assert not local.owner_only_delete and local.list_all_runs
    monkeypatch.setenv("QLAB_AUTH", "oidc")
    pol = hosting.policy()
    assert pol.owner_only_delete and not pol.list_all_runs
    assert not pol.hosted and pol.allow_local   # sign-in alone does not turn on the hosted limits
    assert hosting.may_delete(ALICE.owner, ALICE.owner, pol)
    assert not hosting.may_delete(ALICE.owner, BOB.owner, pol)
    assert not hosting.may_delete(None, BOB.owner, pol)
    assert hosting.may_delete(ALICE.owner, ROOT.owner, pol, admin=True)


def test_the_limits_table_shows_sign_in_as_in_force(monkeypatch):
    table = {row["variable"]: row for row in hosting.policy().limits_table()}
    assert (table["QLAB_AUTH"]["value"], table["QLAB_ADMINS"]["value"], table["QLAB_ALLOWED_DOMAINS"]["value"]) == ("off", "none", "any")
    monkeypatch.setenv("QLAB_AUTH", "oidc")
    monkeypatch.setenv("QLAB_ADMINS", "Admin@Example.com; ops@example.com")
    monkeypatch.setenv("QLAB_ALLOWED_DOMAINS", "example.com,@partner.org")
    table = {row["variable"]: row for row in hosting.policy().limits_table()}
    assert table["QLAB_AUTH"]["value"] == "oidc" and table["QLAB_AUTH"]["default"] == "off"
    assert table["QLAB_ADMINS"]["value"] == "2 admins" and "example.com" not in table["QLAB_ADMINS"]["value"]   # a count, never the emails
    assert table["QLAB_ALLOWED_DOMAINS"]["value"] == "example.com, partner.org"
    monkeypatch.setenv("QLAB_AUTH", "oicd")
    assert "'oicd' is not a mode" in {row["variable"]: row for row in hosting.sign_in_rows()}["QLAB_AUTH"]["value"]


def test_only_the_owner_or_an_admin_deletes_a_run(tmp_path, signed_in):
    run_id = history.save_run(report(), root=tmp_path, owner=ALICE.owner, owner_email=ALICE.email)
    summary = history.summary(history.load_run(run_id, tmp_path))
    assert summary["owner"] == ALICE.owner and summary["owner_email"] == ALICE.email
    assert ALICE.sub not in history.run_path(run_id, tmp_path).read_text(encoding="utf-8")

    with pytest.raises(history.HistoryError) as info:
        history.delete_run(run_id, tmp_path, requester=BOB.owner, email=BOB.email, admin=identity.is_admin(BOB))
    assert "belongs to someone else" in one_line(str(info.value))
    assert history.run_path(run_id, tmp_path).is_file()
    assert history.load_run(run_id, tmp_path)["run_id"] == run_id
    assert audit.read(tmp_path) == []   # a refused delete is not logged as a delete

    assert identity.is_admin(ROOT)
    assert history.delete_run(run_id, tmp_path, requester=ROOT.owner, email=ROOT.email, admin=identity.is_admin(ROOT))
    assert not history.run_path(run_id, tmp_path).exists()
    lines = audit.read(tmp_path)
    assert [(line["action"], line["who"], line["email"], line["target"]) for line in lines] == [("deleted", ROOT.owner, ROOT.email, run_id)]

    mine = history.save_run(report(), root=tmp_path, owner=BOB.owner, owner_email=BOB.email)
    assert history.delete_run(mine, tmp_path, requester=BOB.owner, email=BOB.email)   # the owner may
    assert audit.read(tmp_path)[-1]["who"] == BOB.owner


def test_imports_record_their_owner(tmp_path, signed_in):
    run_id = history.import_report(json.dumps(report()).encode(), "shared.json", tmp_path, owner=BOB.owner, owner_email=BOB.email)
    assert history.run_owner(run_id, tmp_path) == BOB.owner and history.run_owner_email(run_id, tmp_path) == BOB.email
    line = audit.read(tmp_path)[-1]
    assert (line["action"], line["who"], line["email"], line["target"]) == ("imported", BOB.owner, BOB.email, run_id)


@pytest.fixture()
def slow_queue(tmp_path):
    q = JobQueue(tmp_path / "queue", runners={"sleep": f"{SLOW}:sleep_runner"}, poll_s=0.05)
    yield q
    q.close()


def _state(q: JobQueue, job_id: str, want: tuple[str, ...], timeout: float = 20) -> str:
    deadline = time.time() + timeout
    while (state := q.status(job_id)["state"]) not in want:
        assert time.time() < deadline, q.status(job_id)
        time.sleep(0.05)
    return state


def test_only_the_owner_or_an_admin_cancels_a_job(slow_queue, signed_in):
    q = slow_queue
    first = q.submit({"model": "m1", "seconds": 30}, kind="sleep", visitor=ALICE.owner, owner=ALICE.owner, owner_email=ALICE.email)
    second = q.submit({"model": "m2", "seconds": 30}, kind="sleep", visitor=ALICE.owner, owner=ALICE.owner, owner_email=ALICE.email)
    _state(q, first.id, ("running",))

    assert q.cancel(first.id, by=BOB.owner, email=BOB.email, admin=identity.is_admin(BOB)) is False
    assert q.cancel(second.id, by=BOB.owner, email=BOB.email) is False
    time.sleep(0.3)
    assert q.status(first.id)["state"] == "running" and not q.status(first.id)["cancel_requested"]
    assert q.status(second.id)["state"] == "queued"

    assert q.cancel(second.id, by=ROOT.owner, email=ROOT.email, admin=identity.is_admin(ROOT)) is True   # an admin may
    assert q.status(second.id)["state"] == "cancelled"
    assert q.cancel(first.id, by=ALICE.owner, email=ALICE.email) is True                                  # the owner may
    assert _state(q, first.id, ("done", "failed", "cancelled")) == "cancelled"

    lines = [(line["action"], line["who"], line["email"], line["target"]) for line in audit.read(q.root)]
    assert lines == [("ran", ALICE.owner, ALICE.email, first.id),
                     ("ran", ALICE.owner, ALICE.email, second.id),
                     ("cancelled", ROOT.owner, ROOT.email, second.id),
                     ("cancelled", ALICE.owner, ALICE.email, first.id)]   # Bob's refused attempts wrote nothing
