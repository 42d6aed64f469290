"""Whole-dataset throughput (core.measure.bench.dataset_throughput): texts per second over every text, batches sorted by
length against batches in data order, alternated pass by pass. ``DatasetThroughput.from_dict`` is its one parser
(reports of every age, the engine's dicts); ``to_dict`` writes it back as it came; ``throughput_summary`` reads one for people
(the rows of a report: throughput_table.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

from .fields import integer, num, plain, schema_of, spec

MODES = ("sorted", "unsorted")


class _ReadsLikeADict(Mapping):
    """Read access as the JSON dict it came from (``dt["sorted"]["passes"]``), for code written against that dict."""

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __eq__(self, other) -> bool:   # equal when they write the same JSON (a dict of that JSON too)
        return self.to_dict() == (other.to_dict() if isinstance(other, _ReadsLikeADict) else other) if isinstance(other, Mapping) else NotImplemented

    __hash__ = None


def _parse(cls, d: Mapping, convert=None) -> dict:
    """Field values of ``cls`` from ``d``; a key it does not know, or a known one whose value is null, goes to ``extra``
    (kept as it came: null and absent read the same, and the report is written back unchanged)."""
    names = {f.name for f in fields(cls)} - {"extra"}
    values, extra = {}, {}
    for k, v in d.items():
        if k in names and v is not None:
            values[k] = convert(k, v) if convert else v
        else:
            extra[k] = v
    return {**values, "extra": extra}


def _to_dict(obj) -> dict:
    out = {f.name: plain(getattr(obj, f.name)) for f in fields(obj) if f.name != "extra" and getattr(obj, f.name) is not None}
    return {**out, **plain(obj.extra)}


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass(eq=False)
class ThroughputMode(_ReadsLikeADict):
    """One mode (sorted or unsorted) over its alternated passes."""

    texts_per_s: float | None = spec(num(0, 1e12), unit="texts/s", default=None, doc="median over the passes")
    texts_per_s_min: float | None = spec(None, unit="texts/s", default=None, doc="the slowest pass")
    texts_per_s_max: float | None = spec(None, unit="texts/s", default=None, doc="the fastest pass")
    passes: int | None = spec(None, unit="passes", default=None, doc="timed passes over the whole dataset")
    padding_fraction: float | None = spec(None, default=None, doc="share of the tokens fed that are padding")
    seconds: float | None = spec(num(0, 1e9), unit="s", default=None, doc="the median pass")
    texts: int | None = spec(integer(0, 10**9), unit="texts", default=None, doc="texts in the dataset")
    batches: int | None = spec(integer(0, 10**9), unit="batches", default=None, doc="batches per pass")
    tokens: int | None = spec(None, unit="tokens", default=None, doc="real tokens per pass")
    tokens_fed: int | None = spec(None, unit="tokens", default=None, doc="tokens fed per pass, padding included")
    extra: dict = spec(None, default_factory=dict, doc="keys this lab does not read, kept as they came")

    @classmethod
    def from_dict(cls, d) -> "ThroughputMode":
        """A mode from its dict; a bare number is a texts/s (an older shape), and ``throughput_per_s`` is the older
        name of ``texts_per_s``."""
        if isinstance(d, cls):
            return d
        if isinstance(d, (int, float)) and not isinstance(d, bool):
            return cls(texts_per_s=d)
        d = dict(d) if isinstance(d, Mapping) else {}
        if d.get("texts_per_s") is None and d.get("throughput_per_s") is not None:
            d = {k: v for k, v in d.items() if k != "texts_per_s"}
            d = {("texts_per_s" if k == "throughput_per_s" else k): v for k, v in d.items()}
        return cls(**_parse(cls, d))

    def to_dict(self) -> dict:
        return _to_dict(self)

    def rate(self, name: str = "texts_per_s") -> float | None:
        """``texts_per_s`` (or ``texts_per_s_min`` / ``_max``) as a finite float, else None."""
        return _number(getattr(self, name))


MODE_SCHEMA = schema_of(ThroughputMode, extra=True)


def _mode_or_raw(key, value):
    if key in MODES:
        return ThroughputMode.from_dict(value) if isinstance(value, (Mapping, int, float)) and not isinstance(value, bool) else None
    return value


@dataclass(eq=False)
class DatasetThroughput(_ReadsLikeADict):
    """One result's whole-dataset throughput; empty (``{}``) when it was not measured."""

    sorted: ThroughputMode | None = spec(MODE_SCHEMA, default=None, doc="batches sorted by token count")
    unsorted: ThroughputMode | None = spec(MODE_SCHEMA, default=None, doc="batches in data order")
    batch_size: int | None = spec(integer(0, 100_000, null=True), unit="texts", default=None, doc="its own batch size, capped at the texts")
    warmup_batches: int | None = spec(None, unit="batches", default=None, doc="untimed batches per mode first")
    extra: dict = spec(None, default_factory=dict, doc="keys this lab does not read, kept as they came")

    @classmethod
    def from_dict(cls, d) -> "DatasetThroughput":
        """The one parser: a ``DatasetThroughput`` as is, a dict of any age, or nothing (None, not a dict) as empty."""
        if isinstance(d, cls):
            return d
        d = dict(d) if isinstance(d, Mapping) else {}
        values = _parse(cls, d, _mode_or_raw)
        for mode in MODES:   # a mode that is no mode at all (a string, a list) reads as missing and is kept as it came
            if mode in d and values.get(mode) is None and d[mode] is not None:
                values.pop(mode, None)
                values["extra"][mode] = d[mode]
        return cls(**values)

    def to_dict(self) -> dict:
        return _to_dict(self)

    def mode(self, name: str) -> ThroughputMode:
        return getattr(self, name) or ThroughputMode()


SCHEMA = schema_of(DatasetThroughput, extra=True, null=True)   # a result's ``dataset_throughput`` entry


# -- read for people: sorted by length against data order ------------------------------------------------
def throughput_summary(dt) -> dict | None:
    """One result's ``dataset_throughput`` read for people (None when it was not measured).

    ``gain`` = sorted median / unsorted median; ``within_noise`` = the two min-max ranges overlap (None for reports
    from before repeated passes, which have no spread); ``padding`` = (sorted, unsorted) padding fractions or None;
    ``words``: at batch 1 that sorting cannot matter, else "no difference within noise" or the gain beside the padding.
    """
    dt = DatasetThroughput.from_dict(dt)
    s, u = dt.mode("sorted"), dt.mode("unsorted")
    s_med, u_med = s.rate(), u.rate()
    if s_med is None or u_med is None:
        return None
    ranges = [(m.rate("texts_per_s_min"), m.rate("texts_per_s_max")) for m in (s, u)]
    spread = all(lo is not None and hi is not None for lo, hi in ranges)
    within = (ranges[0][0] <= ranges[1][1] and ranges[1][0] <= ranges[0][1]) if spread else None
    gain = s_med / u_med if u_med > 0 else None
    pads = (s.padding_fraction, u.padding_fraction)
    padding = pads if all(isinstance(p, (int, float)) for p in pads) else None
    batch = dt.batch_size
    pad_words = f"padding {padding[1]:.0%} of tokens unsorted -> {padding[0]:.0%} sorted" if padding else ""
    gain_words = (f"sorted {gain:.2f}x faster" if gain >= 1 else f"sorted {1 / gain:.2f}x slower") if gain else ""
    if batch == 1:
        words = "batch 1: no padding, so sorting cannot matter here" + (
            " (no difference within noise)" if within else f" ({gain_words}: noise)" if gain_words else "")
    elif within:
        words = "no difference within noise" + (f" ({gain_words}; {pad_words})" if pad_words else f" ({gain_words})")
    else:
        words = "; ".join(w for w in (gain_words, pad_words) if w) + ("" if spread else " (one pass per mode: no spread measured)")
    return {"batch_size": batch, "sorted": s_med, "unsorted": u_med, "gain": gain, "spread": spread, "within_noise": within,
            "padding": padding, "passes": (s.passes, u.passes), "words": words}
