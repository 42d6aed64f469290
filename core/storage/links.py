"""Share links that can be withdrawn (issue 20): ``?link=<token>`` opens one saved run, read-only.

A link is made by the run's owner for one audience, kept in ``<store root>/links.json`` and never reused:

* ``team``: signed-in colleagues only (the default when sign-in is on);
* ``anyone``: anyone who has the link, signed in or not.

The owner (or an admin) can revoke it; a revoked link opens nothing. A link only ever opens a run to read: it never
grants delete, rerun or export of a store entry (the pages treat a run opened by a link as someone else's).
"""

from __future__ import annotations

import json
import secrets
import time

from ..errors import QlabError
from ..paths import atomic_write_text, store_root

FILE = "links.json"
AUDIENCES = {"team": "signed-in colleagues", "anyone": "anyone with the link (read-only)"}


class LinkError(QlabError):
    """A link that does not open (unknown, revoked, or for signed-in colleagues only)."""


def _path(root=None):
    return store_root(root) / FILE


def _lock(root=None):
    from filelock import FileLock

    path = _path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=30)


def _load(root=None) -> dict:
    path = _path(root)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def create(run_id: str, owner: str | None, audience: str = "team", *, email: str | None = None, root=None) -> str:
    """A new link to ``run_id`` for ``audience``; returns its token (and writes a 'shared' audit line)."""
    from . import audit

    if audience not in AUDIENCES:
        raise LinkError(f"Unknown link audience '{audience}'; choose {' or '.join(AUDIENCES)}.")
    token = secrets.token_urlsafe(18)
    with _lock(root):
        links = _load(root)
        links[token] = {"run_id": run_id, "owner": owner, "email": email, "audience": audience, "created": time.time(), "revoked": None}
        atomic_write_text(_path(root), json.dumps(links, indent=1))
    audit.record("shared", owner, run_id, email=email, audience=audience, link=token[:6], root=root)
    return token


def revoke(token: str, *, by: str | None, admin: bool = False, email: str | None = None, root=None) -> None:
    """Withdraw a link: its owner or an admin only; afterwards it opens nothing."""
    from . import audit

    with _lock(root):
        links = _load(root)
        link = links.get(token)
        if link is None:
            raise LinkError("No such link.")
        if not admin and (not by or link.get("owner") != by):
            raise LinkError("Only the person who made this link (or an admin) can revoke it.")
        link["revoked"] = time.time()
        atomic_write_text(_path(root), json.dumps(links, indent=1))
    audit.record("revoked", by, link["run_id"], email=email, link=token[:6], root=root)


def resolve(token: str | None, *, signed_in: bool, root=None) -> str:
    """The run ``token`` opens for this visitor; a one-line LinkError when it opens nothing for them."""
    link = _load(root).get(str(token or ""))
    if link is None:
        raise LinkError("This link does not exist on this lab; ask its owner for a new one.")
    if link.get("revoked"):
        raise LinkError("This link was withdrawn by its owner; ask them for a new one.")
    if link.get("audience") == "team" and not signed_in:
        raise LinkError("This link is for signed-in colleagues: sign in to open it.")
    return str(link["run_id"])


def audience_of(token: str | None, root=None) -> str | None:
    """A live link's audience (None for an unknown or revoked one): decides whether it opens without sign-in."""
    link = _load(root).get(str(token or ""))
    return None if link is None or link.get("revoked") else link.get("audience")


def links_for(run_id: str, root=None, *, live_only: bool = True) -> list[dict]:
    """The links to ``run_id`` (newest first), each with its token."""
    out = [{"token": t, **link} for t, link in _load(root).items() if link.get("run_id") == run_id and (not live_only or not link.get("revoked"))]
    return sorted(out, key=lambda link: -float(link.get("created") or 0))


def shared_run_ids(root=None) -> set[str]:
    """Runs with a live link: the team's view of History lists them."""
    return {link["run_id"] for link in _load(root).values() if not link.get("revoked") and link.get("run_id")}
