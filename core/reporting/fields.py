"""A report field declared once: ``spec(schema, unit=..., csv=..., doc=...)`` puts the field's JSON Schema entry (its
type and range), unit, CSV column position and description in the dataclass field's metadata; ``schema_of`` and
``csv_columns`` walk ``dataclasses.fields`` to derive the JSON Schema object and the CSV columns from them.

A field's ``schema`` is a JSON Schema fragment (built with ``num``, ``integer``, ``text``, ``obj``, ``array``), a
callable ``(task, strict) -> fragment`` for entries that depend on the task or on how strict the check is, or None
for a field that has no entry of its own (it is checked as free extra info where the object allows extras).

CSV positions: 0-99 the fixed columns, 100-199 the generation scenario's (present when a result has generation cells),
200-299 the latency cells' output check against fp32 (present when a cell has one), then the task's quality metrics
(sorted by name), then 1000+ (the error).
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, field, fields, is_dataclass

MAX_RESULTS = 40            # variants in one report (the charts give each its own colour)
MAX_CELLS = 500             # latency cells per variant
MAX_NOTES = 50
MAX_TEXT = 2000             # a note, an error, a reason
MAX_NAME = 200              # a model, a data set, a CPU
MAX_TARGETS = 64
EARLIEST, LATEST = 946684800.0, 4102444800.0   # 2000-01-01 .. 2100-01-01 (epoch seconds)

VARIANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}(:[a-z_][a-z0-9_]{0,31}=[A-Za-z0-9._-]{1,32}){0,8}$"
RUN_ID_PATTERN = r"^[0-9a-f]{32}$"

CSV_FIXED, CSV_GENERATION, CSV_CHECK, CSV_TAIL = 0, 100, 200, 1000


# -- JSON Schema fragments ----------------------------------------------------------------------------
def num(lo=0.0, hi=1e15, null=True) -> dict:
    return {"type": ["number", "null"] if null else "number", "minimum": lo, "maximum": hi}


def integer(lo=0, hi=10**15, null=False) -> dict:
    return {"type": ["integer", "null"] if null else "integer", "minimum": lo, "maximum": hi}


def text(n=MAX_NAME, null=False) -> dict:
    return {"type": ["string", "null"] if null else "string", "maxLength": n}


def array(items: dict, max_items: int, null=False) -> dict:
    return {"type": ["array", "null"] if null else "array", "maxItems": max_items, "items": items}


SCALAR = {"anyOf": [text(MAX_TEXT), {"type": ["number", "boolean", "null"], "minimum": -1e15, "maximum": 1e15}]}
SHORT_LIST = {"type": "array", "maxItems": 64, "items": SCALAR}
INFO_DEPTH = 3              # free info nests objects this deep: a probe's runtimes -> llama.cpp -> {"version", "system_info"}


def _info(depth: int) -> dict:
    """Free information (what a runtime or a machine reports about itself): a scalar, a short list of scalars, or an
    object of up to 64 such values, objects nesting ``depth`` levels. The one definition of what a probe, an
    environment block or a note-like extra field may hold; ``hardware.probe`` and every family's probe are checked
    against it by the tests, and every report the lab writes is checked against it before it is saved."""
    inner = [SCALAR, SHORT_LIST]
    if depth > 0:
        inner.append({"type": "object", "maxProperties": 64, "additionalProperties": _info(depth - 1)})
    return {"anyOf": inner}


INFO = _info(INFO_DEPTH)
BOOL_OR_NULL = {"type": ["boolean", "null"]}
VARIANT = {"type": "string", "pattern": VARIANT_PATTERN}


def obj(props: dict, required=(), extra=False, null=False) -> dict:
    """An object with ``props``; ``extra``: other keys allowed as free info (INFO), else refused."""
    out = {"type": ["object", "null"] if null else "object", "properties": props, "additionalProperties": INFO if extra else False}
    if required:
        out["required"] = list(required)
    return out


# -- declaring a field ----------------------------------------------------------------------------------
def spec(schema, *, unit: str = "", csv: int | None = None, doc: str = "", required: bool = False, default=MISSING, default_factory=MISSING):
    """A dataclass field carrying its definition: ``schema`` (fragment, callable or None), ``unit``, ``csv`` (column
    position, None = not a CSV column), ``doc`` and ``required`` (required by the JSON Schema, which may differ from the
    dataclass's own defaults: an old report may lack a field the lab always writes now)."""
    meta = {"schema": schema, "unit": unit, "csv": csv, "doc": doc, "required": required}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def schema_of(cls, *, task: str | None = None, strict: bool = True, extra=False, null: bool = False) -> dict:
    """The JSON Schema object of dataclass ``cls``: one property per field that has a schema, in field order;
    ``extra``: False (no other keys), True (other keys as free info) or a schema for every other key."""
    props = {}
    for f in fields(cls):
        entry = f.metadata.get("schema")
        if entry is not None:
            props[f.name] = entry(task, strict) if callable(entry) else entry
    out = obj(props, required=[f.name for f in fields(cls) if f.metadata.get("required")], extra=extra is True, null=null)
    if isinstance(extra, dict):
        out["additionalProperties"] = extra
    return out


def csv_fields(*classes, positions: range = range(0, 10**6)) -> list:
    """(position, name, dataclass field) of every CSV field of ``classes`` whose position is in ``positions``, sorted."""
    found = {}
    for cls in classes:
        for f in fields(cls):
            pos = f.metadata.get("csv")
            if pos is not None and pos in positions:
                found.setdefault(f.name, (pos, f.name, f))
    return sorted(found.values(), key=lambda t: t[0])


def csv_columns(*classes, positions: range = range(0, 10**6)) -> list[str]:
    """The CSV column names declared by ``classes`` within ``positions``, in column order (a name once)."""
    return [name for _, name, _ in csv_fields(*classes, positions=positions)]


def describe(cls) -> list[dict]:
    """Each field of ``cls`` with its unit, CSV position and description (for docs and operators)."""
    return [{"name": f.name, "unit": f.metadata.get("unit", ""), "csv": f.metadata.get("csv"), "doc": f.metadata.get("doc", "")}
            for f in fields(cls)]


# -- reading and writing ----------------------------------------------------------------------------------
def known(cls, d: dict) -> dict:
    """The keys of ``d`` that are fields of ``cls`` (an old or newer report may carry others)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in dict(d).items() if k in names}


def plain_fields(obj) -> dict:
    """The fields of dataclass instance ``obj`` as plain data (``dataclasses.asdict``, with ``plain`` for each value)."""
    return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}


def plain(value):
    """A value as plain data: a dataclass by its own ``to_dict`` when it has one, lists and dicts item by item."""
    if is_dataclass(value) and not isinstance(value, type):
        return value.to_dict() if hasattr(value, "to_dict") else plain_fields(value)
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return copy.deepcopy(value)
