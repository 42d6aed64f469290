"""Hosted-mode policy: what a public deployment of the dashboard refuses, and the limits it applies.

Set ``QLAB_HOSTED=1`` to host the lab for visitors. Then:

* local model folders and data paths outside the store are refused (``EvalConfig.allow_local=False``);
* every limit in :data:`LIMITS` applies (each has a default for hosted and for local mode, and an environment
  variable that overrides it; the Data page shows them all): rows, bytes and tokens per upload, variants per job,
  the form of typed variant specs, job wall time, jobs per visitor, queue length, imports per visitor, model size,
  and the hub download timeout;
* the run history lists only the visitor's own runs (others are reachable only through a ``?run=<id>`` link),
  and only the session that created a run can delete it;
* the store cannot be cleared from the UI;
* messages never show server paths (:func:`redact`), user and imported strings are escaped before markdown
  (:func:`md`), and CSV cells cannot start a formula (``csv_cell`` in core/reporting/csv_export.py, on every export).

The queue (core/serving/jobs.py) asks :func:`admit` before it queues a job and :func:`deadline` when one starts; nothing
here imports torch or Streamlit, so the UI can ask it on every rerun.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..errors import QlabError
from ..paths import PROJECT_ROOT

TRUE = ("1", "true", "yes", "on")
LOCAL_UPLOAD_MB = 50      # matches server.maxUploadSize in .streamlit/config.toml
HOSTED_UPLOAD_MB = 10
HOSTED_MODEL_MB = 600


@dataclass(frozen=True)
class Limit:
    """One limit: its Policy field, what it caps, its defaults (hosted, local; 0 = none) and its variable."""

    field: str
    what: str
    hosted: float
    local: float
    env: str
    unit: str = ""


# every limit of a deployment: (field, words, hosted default, local default (0 = no limit), variable, unit)
LIMITS = (
    Limit("max_upload_mb", "bytes per upload", HOSTED_UPLOAD_MB, LOCAL_UPLOAD_MB, "QLAB_MAX_UPLOAD_MB", "MB"),
    Limit("max_rows", "rows per upload", 2_000, 50_000, "QLAB_MAX_ROWS", "rows"),
    Limit("max_tokens", "tokens per upload (counted with the bundled MiniLM WordPiece tokenizer)", 200_000, 5_000_000, "QLAB_MAX_TOKENS", "tokens"),
    Limit("max_variants", "variants per job", 6, 40, "QLAB_MAX_VARIANTS", "variants"),
    Limit("job_wall_s", "wall time per job (waiting for the machine not counted)", 900, 0, "QLAB_JOB_WALL_S", "s"),
    Limit("jobs_per_visitor", "queued or running jobs per visitor", 2, 0, "QLAB_JOBS_PER_VISITOR", "jobs"),
    Limit("max_queue", "jobs waiting in the queue", 8, 0, "QLAB_MAX_QUEUE", "jobs"),
    Limit("max_imports", "report imports per visitor (per server process)", 20, 0, "QLAB_MAX_IMPORTS", "imports"),
    Limit("max_model_mb", "model weights (a hub model's whole download, subfolders included)", HOSTED_MODEL_MB, 0, "QLAB_MAX_MODEL_MB", "MB"),
    Limit("hub_timeout_s", "time to list and download a hub model", 300, 1800, "QLAB_HUB_TIMEOUT_S", "s"),
)

# the accepted form of a typed variant spec: recipe[:key=value]... (names, keys and values from a small alphabet)
SPEC_FORM = "recipe[:key=value]..., e.g. dynamic-int8:engine=qnnpack (letters, digits, '.', '_', '-'; at most 8 parameters)"
SPEC_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}(:[a-z_][a-z0-9_]{0,31}=[A-Za-z0-9._-]{1,32}){0,8}$")
MAX_SPEC_CHARS = 300          # the whole "more variant specs" text


@dataclass(frozen=True)
class Policy:
    hosted: bool
    allow_local: bool
    max_upload_bytes: int
    max_model_bytes: int | None      # None = no cap
    can_clear_store: bool
    list_all_runs: bool
    max_rows: int | None = None
    max_tokens: int | None = None
    max_variants: int | None = None
    job_wall_s: float | None = None
    jobs_per_visitor: int | None = None
    max_queue: int | None = None
    max_imports: int | None = None
    hub_timeout_s: float = 300.0
    owner_only_delete: bool = False

    def describe(self) -> str:
        """One line for the UI saying what this deployment allows."""
        if not self.hosted:
            return f"Local mode: local model folders allowed, uploads up to {self.max_upload_bytes // 2**20} MB."
        model = f", models up to {self.max_model_bytes // 2**20} MB of weights" if self.max_model_bytes else ""
        return (f"Hosted mode: bundled models and hub ids only (no local folders), uploads up to "
                f"{self.max_upload_bytes // 2**20} MB{model}; your uploads stay in your session and in runs you share.")

    def value(self, limit: Limit):
        """The limit in force (None = no limit), in the limit's unit."""
        if limit.field == "max_upload_mb":
            return self.max_upload_bytes / 2**20
        if limit.field == "max_model_mb":
            return self.max_model_bytes / 2**20 if self.max_model_bytes else None
        return getattr(self, limit.field)

    def limits_table(self) -> list[dict]:
        """Every limit with its value here and the variable that sets it (the Data page shows this)."""
        rows = []
        for limit in LIMITS:
            value = self.value(limit)
            shown = "no limit" if not value else f"{value:,.0f} {limit.unit}".strip()
            default = limit.hosted if self.hosted else limit.local
            rows.append({"limit": limit.what, "value": shown, "variable": limit.env,
                         "default": "no limit" if not default else f"{default:,.0f} {limit.unit}".strip()})
        rows.extend(sign_in_rows())
        rows.append({"limit": "typed variant specs", "value": SPEC_FORM, "variable": "-", "default": "-"})
        return rows


def sign_in_rows() -> list[dict]:
    """Sign-in (issue 20) as the limits table shows it: the mode, how many admins (never their emails) and the
    admitted email domains, each with the value in force."""
    from .identity import ADMINS_ENV, AUTH_ENV, DOMAINS_ENV, admins, allowed_domains, auth_mode

    try:
        mode = "oidc" if auth_mode() == "oidc" else "off"
    except QlabError:   # every page stops with the one-line error; the table says so rather than failing
        mode = f"{os.environ.get(AUTH_ENV, '').strip()[:20]!r} is not a mode: every page refuses"
    count = len(admins())
    domains = allowed_domains()
    return [
        {"limit": "sign-in with the team's OpenID Connect provider ([auth] in .streamlit/secrets.toml)", "value": mode,
         "variable": AUTH_ENV, "default": "off"},
        {"limit": "admins (may delete any run, cancel any job, revoke any link; signed in)",
         "value": f"{count} admin{'s' if count != 1 else ''}" if count else "none", "variable": ADMINS_ENV, "default": "none"},
        {"limit": "email domains admitted at sign-in", "value": ", ".join(sorted(domains)) if domains else "any",
         "variable": DOMAINS_ENV, "default": "any"},
    ]


def _env_mb(name: str, default: float | None) -> float | None:
    """A positive number from the environment; a missing, malformed or non-positive value keeps the default
    (``0`` means "no limit" only where the default is already none: a typo never lifts a hosted limit)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value > 0 and value == value and value != float("inf") else default


def is_hosted() -> bool:
    return os.environ.get("QLAB_HOSTED", "").strip().lower() in TRUE


def _limit(limit: Limit, hosted: bool):
    default = limit.hosted if hosted else limit.local
    value = _env_mb(limit.env, default or None)
    return value if value else None


def policy() -> Policy:
    from .identity import sign_in_required

    hosted = is_hosted()
    people = sign_in_required()   # with sign-in, runs belong to people: only their owner (or an admin) deletes them
    by_field = {limit.field: limit for limit in LIMITS}
    upload_mb = min(_limit(by_field["max_upload_mb"], hosted), LOCAL_UPLOAD_MB)  # the server never accepts more than its maxUploadSize
    model_mb = _limit(by_field["max_model_mb"], hosted)

    def count(field):
        value = _limit(by_field[field], hosted)
        return int(value) if value else None

    wall = _limit(by_field["job_wall_s"], hosted)
    return Policy(
        hosted=hosted,
        allow_local=not hosted,
        max_upload_bytes=int(upload_mb * 2**20),
        max_model_bytes=int(model_mb * 2**20) if model_mb else None,
        can_clear_store=not hosted and not people,   # with sign-in: admins only (the Store page asks)
        list_all_runs=not hosted and not people,
        max_rows=count("max_rows"),
        max_tokens=count("max_tokens"),
        max_variants=count("max_variants"),
        job_wall_s=float(wall) if wall else None,
        jobs_per_visitor=count("jobs_per_visitor"),
        max_queue=count("max_queue"),
        max_imports=count("max_imports"),
        hub_timeout_s=float(_limit(by_field["hub_timeout_s"], hosted) or 300.0),
        owner_only_delete=hosted or people,
    )


def looks_local(name: str) -> bool:
    """True if a model name is (or looks like) a filesystem path rather than a bundled name or hub id."""
    name = (name or "").strip()
    if not name:
        return False
    if name.startswith((".", "/", "~", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    try:
        return Path(name).expanduser().is_dir()
    except OSError:
        return False


def check_model_name(name: str, pol: Policy | None = None) -> None:
    pol = pol or policy()
    if not pol.allow_local and looks_local(name):
        raise QlabError("Local model folders are disabled on this hosted lab; use a bundled model or a Hugging Face hub id.")


def check_model_size(name: str, weight_bytes: int, pol: Policy | None = None) -> None:
    pol = pol or policy()
    if pol.max_model_bytes and weight_bytes > pol.max_model_bytes:
        raise QlabError(
            f"Model '{name}' has {weight_bytes / 2**20:.0f} MB of weights; this hosted lab accepts up to "
            f"{pol.max_model_bytes / 2**20:.0f} MB. Pick a smaller model."
        )


def check_upload_size(name: str, size: int, pol: Policy | None = None) -> None:
    pol = pol or policy()
    if size > pol.max_upload_bytes:
        raise QlabError(
            f"'{name}' is {size / 2**20:.1f} MB; uploads are limited to {pol.max_upload_bytes / 2**20:.0f} MB here. "
            "Upload a smaller sample of your data."
        )


def check_data_path(path: str | os.PathLike | None, store_root: str | os.PathLike, pol: Policy | None = None) -> None:
    """In hosted mode a data path must lie inside the store (where uploads are written for a run)."""
    pol = pol or policy()
    if path is None or pol.allow_local:
        return
    resolved, root = Path(path).resolve(), Path(store_root).resolve()
    if root != resolved and root not in resolved.parents:
        raise QlabError("Data paths outside the lab's store are disabled on this hosted lab; upload the file on the Data page instead.")


# -- uploads --------------------------------------------------------------------------------------
def check_dataset_size(name: str, rows: int, tokens: int | None, pol: Policy | None = None) -> None:
    """Rows and tokens of a parsed upload against the limits (``tokens`` None = not counted: under the cap by length)."""
    pol = pol or policy()
    if pol.max_rows and rows > pol.max_rows:
        raise QlabError(f"'{name}' has {rows:,} rows; this lab measures at most {pol.max_rows:,} rows per upload "
                        f"(QLAB_MAX_ROWS). Upload a sample of your data.")
    if pol.max_tokens and tokens is not None and tokens > pol.max_tokens:
        raise QlabError(f"'{name}' is more than {pol.max_tokens:,} tokens long; this lab measures at most {pol.max_tokens:,} tokens "
                        f"per upload (QLAB_MAX_TOKENS). Upload a shorter sample of your data.")


# -- variants -------------------------------------------------------------------------------------
def parse_extra_specs(text: str | None) -> list[str]:
    """The "more variant specs" text -> specs; raises a one-line QlabError naming the first spec not in the accepted form."""
    text = (text or "").strip()
    if not text:
        return []
    if len(text) > MAX_SPEC_CHARS:
        raise QlabError(f"The extra variant specs are {len(text)} characters long; at most {MAX_SPEC_CHARS} are accepted.")
    specs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not SPEC_RE.match(item):
            shown = item if len(item) <= 40 else item[:40] + "…"
            raise QlabError(f"Variant spec '{shown}' is not in the accepted form {SPEC_FORM}.")
        if item not in specs:
            specs.append(item)
    return specs


def check_variants(specs, pol: Policy | None = None) -> None:
    """Variants of one job: each in the accepted form, and not more than the limit."""
    pol = pol or policy()
    specs = list(specs or [])
    for spec in specs:
        if not isinstance(spec, str) or (spec != "all" and not SPEC_RE.match(spec)):
            shown = str(spec)[:40]
            raise QlabError(f"Variant spec '{shown}' is not in the accepted form {SPEC_FORM}.")
    if pol.max_variants and len(specs) > pol.max_variants:
        raise QlabError(f"This comparison has {len(specs)} variants; this lab runs at most {pol.max_variants} per job "
                        f"(QLAB_MAX_VARIANTS). Compare fewer at a time.")
    if pol.hosted and "all" in specs:
        raise QlabError("'all' variants is not available on this hosted lab; choose the variants to compare.")


# -- the queue ------------------------------------------------------------------------------------
class QueueFull(QlabError):
    """The queue is full or the visitor already has as many jobs as allowed; the message says when to try again."""


TYPICAL_JOB_S = 120.0   # a job's duration before any has finished on this server


def typical_duration(recent: list[float] | None) -> float:
    values = sorted(float(v) for v in (recent or []) if v and v > 0)
    return values[len(values) // 2] if values else TYPICAL_JOB_S


def retry_at(queued: int, running_started: float | None, recent: list[float] | None, now: float | None = None) -> float:
    """When a place in the queue should be free: the running job's expected rest plus one typical job per waiting one,
    divided by nothing (one evaluation runs at a time)."""
    now = time.time() if now is None else now
    typical = typical_duration(recent)
    rest = max(5.0, typical - (now - running_started)) if running_started else 0.0
    return now + rest + typical * max(1, queued - 0)


def _clock(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%H:%M UTC")


def admit(*, queued: int, visitor_active: int, running_started: float | None = None, recent: list[float] | None = None,
          pol: Policy | None = None, now: float | None = None) -> None:
    """May a new job join the queue? ``queued`` jobs wait now; the visitor has ``visitor_active`` queued or running.
    Raises :class:`QueueFull` with a "try again at ..." time."""
    pol = pol or policy()
    now = time.time() if now is None else now
    if pol.jobs_per_visitor and visitor_active >= pol.jobs_per_visitor:
        when = retry_at(min(queued, visitor_active), running_started, recent, now)
        raise QueueFull(f"You already have {visitor_active} comparison{'s' if visitor_active != 1 else ''} queued or running "
                        f"(at most {pol.jobs_per_visitor} per visitor here); wait for one to finish, or try again at {_clock(when)}.")
    if pol.max_queue and queued >= pol.max_queue:
        when = retry_at(queued, running_started, recent, now)
        mins = max(1, round((when - now) / 60))
        raise QueueFull(f"The queue is full ({queued} comparisons waiting, at most {pol.max_queue}); "
                        f"try again at {_clock(when)} (in about {mins} min).")


def deadline(started: float, pol: Policy | None = None) -> float | None:
    """When a job started at ``started`` must be stopped (None = no wall-time limit)."""
    pol = pol or policy()
    return started + pol.job_wall_s if pol.job_wall_s else None


def timed_out_message(pol: Policy | None = None) -> str:
    pol = pol or policy()
    return (f"Stopped after {pol.job_wall_s:,.0f} s: jobs on this lab may run at most that long (QLAB_JOB_WALL_S). "
            "Compare fewer variants, batch sizes or rows at a time.")


# -- visitors, owners and imports ---------------------------------------------------------------
def visitor_key(ip: str | None, session_id: str, forwarded_for: str | None = None) -> str:
    """Who counts as one visitor for the per-visitor limits: the client address when the server sees a real one
    (the first ``X-Forwarded-For`` hop when ``QLAB_TRUST_PROXY=1``), else the browser session."""
    import ipaddress

    if isinstance(forwarded_for, str) and forwarded_for and os.environ.get("QLAB_TRUST_PROXY", "").strip().lower() in TRUE:
        ip = forwarded_for.split(",")[0].strip() or ip
    try:
        address = ipaddress.ip_address(ip) if isinstance(ip, str) else None
    except ValueError:
        address = None
    if address is not None and not address.is_loopback:
        return "ip:" + hashlib.sha256(str(address).encode()).hexdigest()[:16]
    return "session:" + hashlib.sha256(str(session_id).encode()).hexdigest()[:16]


def owner_id(token: str | None) -> str | None:
    """What a saved run records as its owner: a hash of the creating session's secret token (never the token)."""
    return hashlib.sha256(f"qlab-owner:{token}".encode()).hexdigest()[:32] if token else None


def may_delete(run_owner: str | None, requester: str | None, pol: Policy | None = None, admin: bool = False) -> bool:
    """Locally anyone may delete a run; hosted, only the session that created it; with sign-in, its owner or an admin."""
    pol = pol or policy()
    if not pol.owner_only_delete or admin:
        return True
    return bool(run_owner) and run_owner == requester


class VisitorTally:
    """What each visitor (a signed-in person, else an address or a session: ``ui.shared.visitor``) has used of a
    per-visitor allowance in this server process: the distinct things taken, oldest visitors forgotten past 10,000."""

    def __init__(self) -> None:
        self._taken: OrderedDict[str, set[str]] = OrderedDict()
        self._lock = threading.Lock()

    def used(self, visitor: str) -> int:
        with self._lock:
            return len(self._taken.get(visitor, ()))

    def take(self, visitor: str, thing: str, limit: int | None, refusal: str) -> None:
        """Count ``thing`` for ``visitor`` (taking the same thing again is free); past ``limit`` raise a one-line
        QlabError: ``refusal`` formatted with ``used``."""
        with self._lock:
            taken = self._taken.setdefault(visitor, set())
            if limit and thing not in taken and len(taken) >= limit:
                raise QlabError(refusal.format(used=len(taken)))
            taken.add(thing)
            self._taken.move_to_end(visitor)
            while len(self._taken) > _MAX_TRACKED:
                self._taken.popitem(last=False)

    def give_back(self, visitor: str, thing: str) -> None:
        with self._lock:
            self._taken.get(visitor, set()).discard(thing)


_MAX_TRACKED = 10_000
_IMPORTS = VisitorTally()
_EXPORTS = VisitorTally()


def take_import(visitor: str, pol: Policy | None = None) -> str:
    """Count one import for ``visitor``; raises a one-line QlabError past the per-visitor cap. Returns the token to
    give back (``give_back_import``) when the import is then refused."""
    pol = pol or policy()
    thing = uuid.uuid4().hex
    if pol.max_imports:
        _IMPORTS.take(visitor, thing, pol.max_imports,
                      "You have imported {used} reports, the most this lab accepts per visitor (QLAB_MAX_IMPORTS).")
    return thing


def give_back_import(visitor: str, thing: str) -> None:
    """An import that was refused does not count."""
    _IMPORTS.give_back(visitor, thing)


# -- the hub --------------------------------------------------------------------------------------
def check_hub_download(hub_id: str, files: list[tuple[str, int | None]], pol: Policy | None = None,
                       store_limit: int | None = None, max_files: int = 400) -> int:
    """The files a hub download would fetch (paths relative to the repo, subfolders included, with sizes), checked
    BEFORE anything is downloaded; returns the total bytes."""
    pol = pol or policy()
    if len(files) > max_files:
        raise QlabError(f"Model '{hub_id}' has {len(files)} files to download (at most {max_files}); pick a model repository with fewer files.")
    unknown = [p for p, size in files if size is None]
    if unknown:
        raise QlabError(f"Model '{hub_id}' does not say the size of '{unknown[0][:60]}'; the lab downloads only files of known size.")
    total = sum(int(size) for _, size in files)
    nested = sum(1 for p, _ in files if "/" in p)
    where = f" ({nested} of its {len(files)} files in subfolders)" if nested else ""
    if pol.max_model_bytes and total > pol.max_model_bytes:
        raise QlabError(f"Model '{hub_id}' is {total / 2**20:,.0f} MB to download{where}; this lab accepts up to "
                        f"{pol.max_model_bytes / 2**20:,.0f} MB (QLAB_MAX_MODEL_MB). Pick a smaller model.")
    if store_limit and total > store_limit:
        raise QlabError(f"Model '{hub_id}' is {total / 2**20:,.0f} MB to download{where}, more than the whole model store "
                        f"({store_limit / 2**20:,.0f} MB, QLAB_CACHE_LIMIT_BYTES).")
    return total


# -- what a visitor reads ---------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$@])")   # CommonMark's escapable punctuation that means something
_PATH = re.compile(r"(?<![\w.:/~-])(/(?:[^\s'\"`,;()\[\]{}<>|]+/)*[^\s'\"`,;()\[\]{}<>|]*)")


def md(value, limit: int = 300) -> str:
    """A user or imported string made safe for st.markdown (and st.info/error/caption, which are markdown too):
    one line, at most ``limit`` characters, every markdown, HTML and Streamlit directive character escaped, so no
    link, image, heading, colour or icon directive, HTML tag or LaTeX can be injected."""
    text = " ".join(str("" if value is None else value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", text)


def _server_roots() -> list[str]:
    roots = {tempfile.gettempdir(), str(Path.home()), str(PROJECT_ROOT), os.environ.get("QLAB_CACHE_DIR", "")}
    return sorted((r.rstrip("/") for r in roots if r and r != "/"), key=len, reverse=True)


def redact(message) -> str:
    """A message with every server path replaced by its last component in brackets (``[data.csv]``): messages shown
    to people never reveal where things live on the server. URLs and hub ids (``org/name``) are left alone."""
    text = str(message)

    def repl(match: re.Match) -> str:
        path = match.group(1)
        if path.count("/") < 2 and not any(path.startswith(r) for r in _server_roots()):
            return path  # "/s" or "/2": not a path worth hiding
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return f"[{name}]" if name else "[server path]"

    return _PATH.sub(repl, text)


# -- hardware targets ---------------------------------------------------------------------------------
HARDWARE_ALLOW_ENV = "QLAB_HARDWARE_ALLOW"


def allowed_hardware() -> list[str] | None:
    """The hardware targets visitors may choose: None (any) unless hosted; hosted, the ids or names in
    ``QLAB_HARDWARE_ALLOW`` (comma-separated; ``all`` lifts the restriction), by default only ``local``."""
    if not is_hosted():
        return None
    raw = [t.strip() for t in os.environ.get(HARDWARE_ALLOW_ENV, "").split(",") if t.strip()]
    if "all" in raw:
        return None
    return raw or ["local"]
# -- downloads of exported variants (Compare page) ----------------------------------------------
HOSTED_EXPORT_MB = 300
HOSTED_EXPORTS_PER_VISITOR = 5


def _env_count(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(float(raw)) if raw else default
    except ValueError:
        value = default
    return value if value and value > 0 else default


def export_cap_bytes() -> int | None:
    """Largest exported folder the dashboard hands out (QLAB_MAX_EXPORT_MB; 300 MB when hosted, no cap locally)."""
    mb = _env_mb("QLAB_MAX_EXPORT_MB", HOSTED_EXPORT_MB if is_hosted() else None)
    return int(mb * 2**20) if mb else None


def exports_per_visitor() -> int | None:
    """Downloads one visitor (a signed-in person, else an address or browser session) may prepare
    (QLAB_EXPORTS_PER_VISITOR; 5 when hosted, no limit locally)."""
    return _env_count("QLAB_EXPORTS_PER_VISITOR", HOSTED_EXPORTS_PER_VISITOR if is_hosted() else None)


def export_limits_words(used: int = 0) -> str | None:
    """The download limits in words for the Compare page, or None when there are none."""
    cap, limit = export_cap_bytes(), exports_per_visitor()
    parts = []
    if cap:
        parts.append(f"each download is at most {cap / 2**20:.0f} MB")
    if limit:
        left = max(0, limit - used)
        parts.append(f"each visitor may prepare {limit} download{'s' if limit != 1 else ''} ({left} left for you)")
    return ("Downloads on this lab: " + " and ".join(parts) + ".") if parts else None


def exports_used(visitor: str) -> int:
    """Downloads ``visitor`` (the signed-in person, else the address or session) has prepared in this server process."""
    return _EXPORTS.used(visitor)


def take_export(visitor: str, variant_ident: str) -> None:
    """Count a download of ``variant_ident`` ("model|task|variant") for ``visitor``: preparing the same one again is
    free; a new one past QLAB_EXPORTS_PER_VISITOR raises a one-line QlabError. With sign-in on, a person's downloads
    count together across their browsers."""
    _EXPORTS.take(visitor, variant_ident, exports_per_visitor(),
                  "You have prepared {used} downloads, the limit per visitor on this hosted lab; download the ones prepared "
                  "above, or run the lab yourself (pip install -r requirements.txt) to export more.")


def give_back_export(visitor: str, variant_ident: str) -> None:
    """A download that failed does not count."""
    _EXPORTS.give_back(visitor, variant_ident)
