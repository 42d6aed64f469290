"""Who a visitor is when the lab is hosted for a team with sign-in (``QLAB_AUTH=oidc``, issue 20).

The dashboard signs people in with Streamlit's OpenID Connect support (``st.login``; the provider is configured in the
``[auth]`` block of ``.streamlit/secrets.toml``); this module holds what follows from an identity and knows nothing
of Streamlit:

* ``QLAB_AUTH``: unset (or ``none``) keeps the lab as it was (no identity provider needed); ``oidc`` asks every page
  for sign-in;
* a :class:`Person` is the ``sub``, email and name the provider's ID token gave; what the lab stores about them is
  their owner key (``person:`` + a digest of ``sub``) and their email, on runs, jobs, exports and audit lines;
* ``QLAB_ADMINS`` (emails) may delete any run and cancel any job; ``QLAB_ALLOWED_DOMAINS`` (e.g. ``example.com``)
  turns away a signed-in person from any other email domain.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from ..errors import QlabError

AUTH_ENV, ADMINS_ENV, DOMAINS_ENV = "QLAB_AUTH", "QLAB_ADMINS", "QLAB_ALLOWED_DOMAINS"
MODES = ("none", "oidc")


@dataclass(frozen=True)
class Person:
    sub: str
    email: str = ""
    name: str = ""

    @property
    def owner(self) -> str:
        """The key runs, jobs and exports record as their owner (the ``sub`` is digested, never stored as given)."""
        return person_key(self.sub)

    @property
    def label(self) -> str:
        return self.email or self.name or self.owner[:15]


def person_key(sub: str) -> str:
    return "person:" + hashlib.sha256(f"qlab-person:{sub}".encode()).hexdigest()[:24]


def auth_mode() -> str:
    """``none`` or ``oidc``; a one-line error for anything else (a typo must not leave a team's lab open)."""
    mode = (os.environ.get(AUTH_ENV) or "none").strip().lower()
    if mode not in MODES:
        raise QlabError(f"{AUTH_ENV}={mode!r} is not a sign-in mode; use oidc (sign-in with the [auth] provider in .streamlit/secrets.toml) or leave it unset.")
    return mode


def sign_in_required() -> bool:
    return auth_mode() == "oidc"


def _emails(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").replace(";", ",").split(",") if part.strip()}


def admins() -> set[str]:
    return _emails(os.environ.get(ADMINS_ENV))


def is_admin(person: Person | None) -> bool:
    return bool(person and person.email and person.email.lower() in admins())


def allowed_domains() -> set[str]:
    return {d.lstrip("@") for d in _emails(os.environ.get(DOMAINS_ENV))}


def refusal(person: Person) -> str | None:
    """Why a signed-in ``person`` may not use this lab (one line), or None."""
    domains = allowed_domains()
    if not domains:
        return None
    email = (person.email or "").lower()
    domain = email.rsplit("@", 1)[1] if "@" in email else ""
    if domain not in domains:
        who = person.email or "this account"
        return f"{who} is not in a domain this lab admits ({', '.join(sorted(domains))}); sign in with your team's account."
    return None


def may_act_on(thing_owner: str | None, person: Person | None) -> bool:
    """Whether ``person`` may delete or cancel something owned by ``thing_owner``: its owner, or an admin."""
    if person is None:
        return False
    return is_admin(person) or (bool(thing_owner) and thing_owner == person.owner)
