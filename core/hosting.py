"""Hosted-mode policy: what a public deployment of the dashboard refuses, and the limits it applies.

Set ``QLAB_HOSTED=1`` to host the lab for visitors. Then:

* local model folders and data paths outside the store are refused (``EvalConfig.allow_local=False``);
* uploads are capped (``QLAB_MAX_UPLOAD_MB``, 10 MB by default when hosted, 50 MB otherwise);
* models are capped by weight size (``QLAB_MAX_MODEL_MB``, 600 MB by default when hosted, none otherwise);
* the run history lists only the visitor's own runs (others are reachable only through a ``?run=<id>`` link);
* the store cannot be cleared from the UI.

Nothing here imports torch: the UI can ask it on every rerun.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import QlabError

TRUE = ("1", "true", "yes", "on")
LOCAL_UPLOAD_MB = 50      # matches server.maxUploadSize in .streamlit/config.toml
HOSTED_UPLOAD_MB = 10
HOSTED_MODEL_MB = 600


@dataclass(frozen=True)
class Policy:
    hosted: bool
    allow_local: bool
    max_upload_bytes: int
    max_model_bytes: int | None      # None = no cap
    can_clear_store: bool
    list_all_runs: bool

    def describe(self) -> str:
        """One line for the UI saying what this deployment allows."""
        if not self.hosted:
            return f"Local mode: local model folders allowed, uploads up to {self.max_upload_bytes // 2**20} MB."
        model = f", models up to {self.max_model_bytes // 2**20} MB of weights" if self.max_model_bytes else ""
        return (f"Hosted mode: bundled models and hub ids only (no local folders), uploads up to "
                f"{self.max_upload_bytes // 2**20} MB{model}; your uploads stay in your session and in runs you share.")


def _env_mb(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return int(value) if value > 0 else default


def is_hosted() -> bool:
    return os.environ.get("QLAB_HOSTED", "").strip().lower() in TRUE


def policy() -> Policy:
    hosted = is_hosted()
    upload_mb = _env_mb("QLAB_MAX_UPLOAD_MB", HOSTED_UPLOAD_MB if hosted else LOCAL_UPLOAD_MB)
    upload_mb = min(upload_mb, LOCAL_UPLOAD_MB)  # the server never accepts more than its maxUploadSize
    model_mb = _env_mb("QLAB_MAX_MODEL_MB", HOSTED_MODEL_MB if hosted else None)
    return Policy(
        hosted=hosted,
        allow_local=not hosted,
        max_upload_bytes=int(upload_mb * 2**20),
        max_model_bytes=int(model_mb * 2**20) if model_mb else None,
        can_clear_store=not hosted,
        list_all_runs=not hosted,
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
    """Downloads one visitor (browser session) may prepare (QLAB_EXPORTS_PER_VISITOR; 5 when hosted, no limit locally)."""
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


def check_export_quota(used: int) -> None:
    limit = exports_per_visitor()
    if limit and used >= limit:
        raise QlabError(f"You have prepared {used} downloads, the limit per visitor on this hosted lab; "
                        "download the ones prepared above, or run the lab yourself (pip install -r requirements.txt) to export more.")
