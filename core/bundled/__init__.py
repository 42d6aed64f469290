"""Bundled models: the registry lives in ``registry.py``; the builders of the trained ones beside it.

This package never imports ``core.inputs.sources``: sources turns a bundled model's folder into a Source, not the other way.
"""

from .registry import BUNDLED, BundledModel, bundled_path, wrong_task

__all__ = ["BUNDLED", "BundledModel", "bundled_path", "wrong_task"]
