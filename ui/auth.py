"""Sign-in for a team's hosted lab (``QLAB_AUTH=oidc``): Streamlit's OpenID Connect (``st.login``, ``st.user``,
``st.logout``) with the provider in the ``[auth]`` block of ``.streamlit/secrets.toml``. UI only: what an identity
may do is in ``core.identity``; what it did goes to ``core.storage.audit``.

``gate()`` runs first on every page. Without ``QLAB_AUTH`` it returns None and the lab is as it always was. With it,
a signed-out visitor sees only the sign-in page (a share link for anyone, ``?link=``, still opens its run read-only),
and a signed-in person from a domain the lab does not admit sees one line and a sign-out button.
"""

from __future__ import annotations

import streamlit as st

from core import identity
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


def _sign_in_page(error: str | None = None) -> None:
    st.title("Quantization Lab")
    st.markdown("This lab is hosted for a team: sign in with your team's account to compare models, run evaluations "
                "and see your runs.")
    if error:
        st.error(error, icon=":material/block:")
    if st.button("Sign in", type="primary", icon=":material/login:"):
        try:
            st.login()
        except Exception as err:  # noqa: BLE001 - a misconfigured [auth] block: say so in one line
            st.error(f"Sign-in is not configured: {str(err).splitlines()[0][:200]} (see 'Running it for a team' in the README).")


def gate(link_opens_without_sign_in: bool = False) -> identity.Person | None:
    """Stop the page unless its visitor may see it; returns the signed-in person (None when sign-in is off, or for a
    signed-out visitor of an anyone-link)."""
    try:
        required = identity.sign_in_required()
    except QlabError as err:
        st.error(str(err))
        st.stop()
    if not required:
        return None
    person = current_person()
    if person is None:
        if link_opens_without_sign_in:
            return None
        _sign_in_page()
        st.stop()
    refused = identity.refusal(person)
    if refused:
        if not st.session_state.get("_audited_refusal"):
            st.session_state["_audited_refusal"] = True
            audit.record("refused", person.owner, email=person.email, reason="domain")
        st.title("Quantization Lab")
        st.error(refused, icon=":material/block:")
        st.button("Sign out", on_click=st.logout)
        st.stop()
    if st.session_state.get("_audited_person") != person.owner:
        st.session_state["_audited_person"] = person.owner
        audit.record("signed-in", person.owner, email=person.email)
    return person


def sidebar_identity(person: identity.Person | None) -> None:
    if person is None:
        return
    with st.sidebar:
        st.caption(f":material/account_circle: Signed in as **{person.label}**" + (" (admin)" if identity.is_admin(person) else ""))
        st.button("Sign out", on_click=st.logout, key="sign_out", icon=":material/logout:")
