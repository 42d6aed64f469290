"""Bundled models: the registry lives in ``registry.py``; the builders of the trained ones beside it."""

from .registry import BUNDLED, SAMPLES, BundledModel, bundled_path, bundled_source

__all__ = ["BUNDLED", "SAMPLES", "BundledModel", "bundled_path", "bundled_source"]
