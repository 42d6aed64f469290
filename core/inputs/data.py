"""Evaluation data: CSV / TSV / JSONL / TXT files (or uploaded bytes) checked and turned into a :class:`Dataset`.

Every problem a person can fix (a missing, empty, binary, mis-encoded or malformed file, or one that lacks the
columns a task needs) is a :class:`~core.errors.DataError` with a one-line message naming the file and the fix.

Columns (names are matched case-insensitively, surrounding spaces ignored):

* embedding:       ``text``  or  ``sentence1,sentence2[,score]`` (pairs; with ``score`` the report adds Spearman)
* classification:  ``text,label``
* causal-lm:       a ``.txt`` file (the whole text), or a ``text`` column whose rows are joined by blank lines
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
from functools import lru_cache
from pathlib import Path

from ..errors import DataError
from ..paths import SAMPLES
from ..tasks import CLASSIFICATION, EMBEDDING, Dataset, check_task, get_task

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
FORMATS = ("csv", "tsv", "jsonl", "txt")
BINARY_MAGIC = {
    b"PK\x03\x04": "a zip archive (xlsx/docx/zip)", b"\x1f\x8b": "gzip data", b"%PDF": "a PDF", b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"\x7fELF": "an executable", b"SQLite format 3": "an SQLite database",
    b"\xd0\xcf\x11\xe0": "an old Office document (xls/doc)", b"PAR1": "a Parquet file", b"\x93NUMPY": "a NumPy array",
    b"\x80\x04": "a Python pickle", b"\x80\x05": "a Python pickle",
}
MAX_JSON_DEPTH = 16   # a data record is an object of strings; anything nested deeper is not evaluation data
_CSV_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _csv_field_limit(limit: int):
    """Raise csv's per-field size limit only while this module parses (it is process-wide state: never left changed)."""
    with _CSV_LIMIT_LOCK:
        old = csv.field_size_limit()
        csv.field_size_limit(max(old, limit))
        try:
            yield
        finally:
            csv.field_size_limit(old)


def sample_path(task: str) -> Path:
    """The bundled sample file for ``task``."""
    return SAMPLES / get_task(task).sample_file


def detect_task(dataset_columns) -> str | None:
    """The task a set of column names suits, or None (a plain text file has no columns: causal-lm is a guess the caller makes)."""
    cols = {str(c).strip().lower() for c in dataset_columns or []}
    if {"text", "label"} <= cols:
        return CLASSIFICATION
    if {"sentence1", "sentence2"} <= cols or cols == {"text"}:
        return EMBEDDING
    return None


# -- reading and decoding -----------------------------------------------------------------------
def _read(path_or_bytes, name: str | None, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        blob = bytes(path_or_bytes)
        name = name or "uploaded data"
        if len(blob) > max_bytes:
            raise DataError(f"'{name}' is {len(blob) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB: use a smaller sample.")
        return blob, name
    if path_or_bytes is None or str(path_or_bytes).strip() == "":
        raise DataError("No data file given: pass a CSV, TSV, JSONL or TXT file.")
    path = Path(str(path_or_bytes)).expanduser()
    name = name or path.name
    if not path.exists():
        raise DataError(f"Data file '{path}' does not exist; check the path.")
    if path.is_dir():
        raise DataError(f"'{path}' is a folder, not a data file; pass a CSV, TSV, JSONL or TXT file.")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DataError(f"'{name}' is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB: use a smaller sample.")
        return path.read_bytes(), name
    except PermissionError:
        raise DataError(f"Data file '{path}' cannot be read (permission denied).") from None
    except OSError as err:
        raise DataError(f"Data file '{path}' cannot be read ({err.strerror or err.__class__.__name__}).") from None


def _decode(blob: bytes, name: str) -> str:
    if not blob.strip():
        raise DataError(f"'{name}' is empty; it needs at least one row of text.")
    if blob.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = blob.decode("utf-16")
        except UnicodeDecodeError:
            raise DataError(f"'{name}' starts with a UTF-16 byte-order mark but is not valid UTF-16; re-save it as UTF-8.") from None
    else:
        head = blob[:16]
        for magic, what in BINARY_MAGIC.items():
            if head.startswith(magic):
                raise DataError(f"'{name}' is {what}, not text; export it as CSV, TSV, JSONL or TXT (UTF-8).")
        if b"\x00" in blob[:65536]:
            raise DataError(f"'{name}' looks binary (it contains NUL bytes); give a text file: CSV, TSV, JSONL or TXT in UTF-8.")
        try:
            text = blob.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise DataError(f"'{name}' is not valid UTF-8 (byte 0x{blob[err.start]:02x} at position {err.start}); re-save it with UTF-8 encoding.") from None
    if not text.strip():
        raise DataError(f"'{name}' is empty; it needs at least one row of text.")
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    if controls > max(8, len(text[:65536]) // 100):
        raise DataError(f"'{name}' looks binary (it is full of control characters); give a text file: CSV, TSV, JSONL or TXT in UTF-8.")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _guess_format(name: str, text: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix in ("csv", "tsv", "txt"):
        return suffix
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    first = next((line for line in text.split("\n") if line.strip()), "")
    if first.lstrip().startswith("{"):
        return "jsonl"
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    return "txt"


# -- parsing ------------------------------------------------------------------------------------
def _parse_delimited(text: str, name: str, delimiter: str) -> tuple[list[str], list[dict]]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    with _csv_field_limit(max(len(text), 1)):
        return _read_delimited(text, name, delimiter, kind)


def _read_delimited(text: str, name: str, delimiter: str, kind: str) -> tuple[list[str], list[dict]]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
        if header is None:
            raise DataError(f"'{name}' is empty; it needs a header row and at least one data row.")
        columns = [h.strip().lower() for h in header]
        if any(not c for c in columns):
            raise DataError(f"'{name}' is a malformed {kind}: its header row has an empty column name (line {reader.line_num}).")
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise DataError(f"'{name}' is a malformed {kind}: column {', '.join(dupes)} appears twice in the header.")
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # blank line
            if len(values) != len(columns):
                raise DataError(
                    f"'{name}' is a malformed {kind}: line {reader.line_num} has {len(values)} fields but the header has {len(columns)}"
                    + (" (quote fields that contain commas)." if kind == "CSV" else ".")
                )
            rows.append(dict(zip(columns, values)))
    except csv.Error as err:
        raise DataError(f"'{name}' is a malformed {kind} near line {reader.line_num}: {err}.") from None
    return columns, rows


def _parse_jsonl(text: str, name: str) -> tuple[list[str], list[dict]]:
    stripped = text.strip()
    rows: list[dict] = []
    if stripped.startswith("["):  # a JSON array of objects is accepted too
        try:
            data = json.loads(stripped)
        except RecursionError:
            raise _too_deep(name) from None
        except ValueError as err:
            raise DataError(f"'{name}' is malformed JSON: {err.msg} at line {err.lineno}.") from None
        if _depth(data) > MAX_JSON_DEPTH:
            raise _too_deep(name)
        items = list(enumerate(data, 1))
    else:
        items = []
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except RecursionError:
                raise _too_deep(name, lineno) from None
            except ValueError as err:
                raise DataError(f"'{name}' is malformed JSONL: line {lineno} is not valid JSON ({err.msg}).") from None
            if _depth(item) > MAX_JSON_DEPTH:
                raise _too_deep(name, lineno)
            items.append((lineno, item))
    columns: list[str] = []
    for lineno, item in items:
        if not isinstance(item, dict):
            raise DataError(f"'{name}' is malformed JSONL: record {lineno} is a {type(item).__name__}, not an object like {{\"text\": ...}}.")
        row = {}
        for key, value in item.items():
            key = str(key).strip().lower()
            if key not in columns:
                columns.append(key)
            row[key] = "" if value is None else (value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value))
        rows.append(row)
    return columns, rows


def _too_deep(name: str, lineno: int | None = None) -> DataError:
    where = f" (line {lineno})" if lineno else ""
    return DataError(f"'{name}' is JSON nested too deeply{where}: at most {MAX_JSON_DEPTH} levels; give one flat object per record, like {{\"text\": ...}}.")


def _depth(value) -> int:
    """Nesting depth of parsed JSON, iteratively (stops counting past MAX_JSON_DEPTH)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_JSON_DEPTH:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _nonempty(rows: list[dict], name: str) -> None:
    if not rows:
        raise DataError(f"'{name}' has a header but no data rows.")


def _from_table(columns: list[str], rows: list[dict], task: str, name: str, fmt: str) -> Dataset:
    _nonempty(rows, name)
    return get_task(task).read_table(columns, rows, name)


def _from_txt(text: str, task: str, name: str) -> Dataset:
    return get_task(task).read_text(text, name)


def load_dataset(path_or_bytes, task: str, name: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES, fmt: str | None = None) -> Dataset:
    """Read and check evaluation data for ``task`` from a path or uploaded bytes (``name`` gives the file name of bytes).

    Raises :class:`DataError` (one line) for anything the person can fix.
    """
    check_task(task)
    blob, name = _read(path_or_bytes, name, max_bytes)
    text = _decode(blob, name)
    fmt = fmt or _guess_format(name, text)
    if fmt not in FORMATS:
        raise DataError(f"Unknown data format '{fmt}'; use one of {', '.join(FORMATS)}.")
    if fmt == "txt":
        return _from_txt(text, task, name)
    if fmt == "jsonl":
        columns, rows = _parse_jsonl(text, name)
    else:
        columns, rows = _parse_delimited(text, name, "\t" if fmt == "tsv" else ",")
    return _from_table(columns, rows, task, name, fmt)


def map_labels(labels: list[str], model_labels: list[str], name: str = "data") -> list[int]:
    """Gold label strings -> the model's class ids (by id2label name, case-insensitive; or by index when the
    model's labels are generic LABEL_n). Labels the model does not know raise a DataError naming them."""
    if not model_labels:
        raise DataError("The model has no id2label in its config, so labels cannot be matched; add id2label to config.json.")
    exact = {lab: i for i, lab in enumerate(model_labels)}
    folded = {lab.strip().lower(): i for i, lab in enumerate(model_labels)}
    generic = all(lab.upper().startswith("LABEL_") for lab in model_labels)
    out, unknown = [], []
    for lab in labels:
        if lab in exact:
            out.append(exact[lab])
        elif lab.strip().lower() in folded:
            out.append(folded[lab.strip().lower()])
        elif generic and lab.strip().isdecimal() and int(lab.strip()) < len(model_labels):
            out.append(int(lab.strip()))   # any script's decimal digits ('٢' is 2); '²' is not a decimal number
        else:
            out.append(-1)
            if lab not in unknown:
                unknown.append(lab)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:6]) + (" ..." if len(unknown) > 6 else "")
        raise DataError(f"'{name}' has label{'s' if len(unknown) > 1 else ''} {shown} that the model does not know; its labels are: {', '.join(model_labels)}.")
    return out


# -- size in tokens -------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _reference_tokenizer():
    """The bundled MiniLM WordPiece tokenizer (tokenizers only: no transformers, no torch), the lab's reference count."""
    from tokenizers import Tokenizer

    from ..bundled.registry import BUNDLED

    tok = Tokenizer.from_file(str(BUNDLED["minilm"].packaged_path() / "tokenizer.json"))
    tok.no_truncation()   # its file truncates to the model's 512 (or 128) tokens: a count must see everything
    tok.no_padding()
    return tok


def _pieces(text: str, size: int = 4096):
    """``text`` in pieces of at most about ``size`` characters, cut at whitespace (WordPiece never joins across
    whitespace, so the pieces' counts add up to the whole text's); one huge string is slow to tokenize in one go."""
    start, n = 0, len(text)
    while start < n:
        end = min(n, start + size)
        if end < n:
            cut = text.rfind(" ", start + 1, end)
            if cut <= start:
                cut = max(text.rfind("\n", start + 1, end), text.rfind("\t", start + 1, end))
            end = cut if cut > start else end
        yield text[start:end]
        start = end


def count_tokens(dataset: Dataset, cap: int | None = None) -> int | None:
    """How many tokens ``dataset`` is, counted with the reference tokenizer (special tokens not counted).

    With ``cap``: None when the text is certainly within it (a WordPiece token covers at least one non-space
    character, so fewer such characters than ``cap`` means fewer tokens), and counting stops soon after passing it."""
    texts = [dataset.raw_text] if dataset.raw_text is not None else list(dataset.texts)
    if cap is not None and sum(len(t) - t.count(" ") for t in texts) <= cap:
        return None
    tok = _reference_tokenizer()
    step = min(1 << 20, max(1 << 14, 4 * cap)) if cap else 1 << 20   # characters per batch: a cap is passed after little work
    total, chunk, chars = 0, [], 0
    for text in texts:
        for piece in _pieces(text):
            chunk.append(piece)
            chars += len(piece)
            if chars >= step:
                total += sum(len(e.ids) for e in tok.encode_batch(chunk, add_special_tokens=False))
                chunk, chars = [], 0
                if cap is not None and total > cap:
                    return total
    if chunk:
        total += sum(len(e.ids) for e in tok.encode_batch(chunk, add_special_tokens=False))
    return total
