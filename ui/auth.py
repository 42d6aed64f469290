"""Sign-in for a team's hosted lab (``QLAB_AUTH=oidc``): Streamlit's OpenID Connect (``st.login``, ``st.user``,
``st.logout``) with the provider in the ``[auth]`` block of ``.streamlit/secrets.toml``. UI only: what an identity
may do is in ``core.access.identity``; what it did goes to ``core.storage.audit``.

``gate()`` runs first on every page. Without ``QLAB_AUTH`` it lets everyone in and the lab is as it always was. With
it, a signed-out visitor gets only the sign-in page (a share link for anyone, ``?link=``, still opens its run
read-only), and a signed-in person from a domain the lab does not admit gets one line and a sign-out button. Such a page
is shown alone through ``st.navigation`` (``show_alone``): were the script to stop before ``st.navigation`` runs,
Streamlit would fall back to listing every file in ``pages/`` in the sidebar.
"""

from __future__ import annotations

import contextlib
import re
from typing import Callable, NamedTuple

import streamlit as st

from core.access import identity
from core.errors import QlabError
from core.storage import audit


def current_person() -> identity.Person | None:
    """The signed-in person (None when sign-in is off or nobody is signed in)."""
    try:
        if not identity.sign_in_required() or not st.user.is_logged_in:
            return None
        sub = st.user.get("sub")
    except Exception:  # noqa: BLE001 - no [auth] configured, or not running in a Streamlit session
        return None
    if not sub:
        return None
    return identity.Person(sub=str(sub), email=str(st.user.get("email") or ""), name=str(st.user.get("name") or ""))


def sign_in_page() -> None:
    """What a signed-out visitor sees, and nothing else of the lab."""
    st.title("Quantization Lab")
    st.markdown("This lab is hosted for a team: sign in with your team's account to compare models, run evaluations "
                "and see your runs.")
    if st.button("Sign in", type="primary", icon=":material/login:"):
        try:
            st.login()
        except Exception as err:  # noqa: BLE001 - a misconfigured [auth] block: say so in one line
            st.error(f"Sign-in is not configured: {str(err).splitlines()[0][:200]} (see docs/hosting.md).")


def refused_page(message: str) -> Callable[[], None]:
    """What a signed-in person from a domain the lab does not admit sees: one line and a sign-out button."""
    def page() -> None:
        st.title("Quantization Lab")
        st.error(message, icon=":material/block:")
        st.button("Sign out", on_click=st.logout)

    return page


def misconfigured_page(message: str) -> Callable[[], None]:
    """Every page when QLAB_AUTH holds no known mode: one line naming it (a typo never leaves the lab open)."""
    def page() -> None:
        st.error(message, icon=":material/error:")

    return page


class Access(NamedTuple):
    """What ``gate`` decided: the signed-in person (None with sign-in off, or for a signed-out visitor holding a link
    for anyone), and the page to show alone instead of the lab (None when the visitor may see it)."""
    person: identity.Person | None
    alone: Callable[[], None] | None = None
    title: str = "Quantization Lab"


def gate(link_opens_without_sign_in: bool = False) -> Access:
    """Whether this visitor may see the lab (see the module docstring); app.py shows ``alone`` instead when it is set."""
    try:
        required = identity.sign_in_required()
    except QlabError as err:
        return Access(None, misconfigured_page(str(err)))
    if not required:
        return Access(None)
    person = current_person()
    if person is None:
        return Access(None) if link_opens_without_sign_in else Access(None, sign_in_page, "Sign in")
    refused = identity.refusal(person)
    if refused:
        if not st.session_state.get("_audited_refusal"):
            st.session_state["_audited_refusal"] = True
            audit.record("refused", person.owner, email=person.email, reason="domain")
        return Access(person, refused_page(refused))
    if st.session_state.get("_audited_person") != person.owner:
        st.session_state["_audited_person"] = person.owner
        audit.record("signed-in", person.owner, email=person.email)
    return Access(person)


_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def show_alone(page: Callable[[], None], title: str) -> None:
    """Run ``page`` as the app's only page: ``st.navigation`` with that page alone and no navigation shown, so neither
    the sidebar nor the messages to the browser name another page or module. The address the visitor asked for
    (``/run``, a colleague's ``/compare?run=...``) serves the same page, hidden, so Streamlit does not answer it with
    "Page not found"; any address does, whether or not the lab has such a page."""
    pages = [st.Page(page, title=title, url_path="", default=True)]   # at the root; no asked-for path collides with it
    asked = ""
    with contextlib.suppress(Exception):   # the path of a fresh request; none after a click inside the app
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        asked = (get_script_run_ctx().pages_manager.intended_page_name or "").strip("/")
    if _PATH.fullmatch(asked):
        pages.append(st.Page(page, title=title, url_path=asked, visibility="hidden"))
    st.navigation(pages, position="hidden").run()


def sidebar_identity(person: identity.Person | None) -> None:
    if person is None:
        return
    with st.sidebar:
        st.caption(f":material/account_circle: Signed in as **{person.label}**" + (" (admin)" if identity.is_admin(person) else ""))
        st.button("Sign out", on_click=st.logout, key="sign_out", icon=":material/logout:")
