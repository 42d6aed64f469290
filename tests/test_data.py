"""core.inputs.data: every accepted format, and a one-line DataError for every kind of bad file."""

from __future__ import annotations

import json

import pytest

from core.errors import DataError
from core.inputs.data import Dataset, detect_task, load_dataset, map_labels, sample_path


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


@pytest.mark.parametrize("task", ["embedding", "classification", "causal-lm"])
def test_bundled_samples_load(task):
    ds = load_dataset(sample_path(task), task)
    assert ds.rows > 10 and ds.texts and ds.task == task
    if task == "embedding":
        assert ds.pairs and len(ds.texts) == 2 * len(ds.pairs)
        assert ds.texts[0] == ds.pairs[0][0] and ds.texts[len(ds.pairs)] == ds.pairs[0][1]
    if task == "classification":
        assert set(ds.labels) == {"world", "sports", "business", "science"}
    if task == "causal-lm":
        assert ds.raw_text and len(ds.raw_text) > 1000 and len(ds.texts) > 3


def test_csv_with_quotes_bom_crlf_and_case_insensitive_columns(tmp_path):
    content = '\ufeffText , LABEL\r\n"Hello, world",pos\r\n\r\n"She said ""hi""",neg\r\n'
    ds = load_dataset(write(tmp_path, "d.csv", content), "classification")
    assert ds.texts == ["Hello, world", 'She said "hi"'] and ds.labels == ["pos", "neg"] and ds.rows == 2
    assert ds.columns == ["text", "label"]


def test_tsv_jsonl_and_txt(tmp_path):
    tsv = load_dataset(write(tmp_path, "d.tsv", "sentence1\tsentence2\tscore\na b\tc d\t1.5\ne f\tg h\t3\n"), "embedding")
    assert tsv.pairs == [("a b", "c d", 1.5), ("e f", "g h", 3.0)] and tsv.texts == ["a b", "e f", "c d", "g h"]
    jsonl = load_dataset(write(tmp_path, "d.jsonl", '{"text": "one", "label": "x"}\n\n{"text": "two", "label": 3}\n'), "classification")
    assert jsonl.texts == ["one", "two"] and jsonl.labels == ["x", "3"]
    txt = load_dataset(write(tmp_path, "d.txt", "line one\n\nline two\n"), "embedding")
    assert txt.texts == ["line one", "line two"]
    lm = load_dataset(write(tmp_path, "lm.txt", "Para one.\nstill one.\n\nPara two.\n"), "causal-lm")
    assert lm.raw_text == "Para one.\nstill one.\n\nPara two." and lm.texts == ["Para one.\nstill one.", "Para two."]
    lm_csv = load_dataset(write(tmp_path, "lm.csv", "text\nfirst\nsecond\n"), "causal-lm")
    assert lm_csv.raw_text == "first\n\nsecond"
    pairs_no_score = load_dataset(write(tmp_path, "p.csv", "sentence1,sentence2\na,b\n"), "embedding")
    assert pairs_no_score.pairs is None and pairs_no_score.texts == ["a", "b"]


def test_bytes_upload_uses_the_name_for_format(tmp_path):
    ds = load_dataset(b"text\tlabel\nhi\tpos\n", "classification", name="upload.tsv")
    assert ds.name == "upload.tsv" and ds.texts == ["hi"]
    sniffed = load_dataset(b'{"text": "a"}\n{"text": "b"}\n', "embedding")
    assert sniffed.texts == ["a", "b"] and sniffed.name == "uploaded data"


def test_round_trip_dict():
    ds = Dataset("n", "embedding", ["a", "b"], pairs=[("a", "b", 1.0)], columns=["sentence1", "sentence2", "score"], rows=1)
    assert Dataset.from_dict(json.loads(json.dumps(ds.to_dict()))) == ds


BAD = [
    ("empty.csv", b"", "is empty"),
    ("blank.csv", b"\n\n  \n", "is empty"),
    ("header_only.csv", b"text,label\n", "no data rows"),
    ("binary.csv", b"text\n\x00\x01\x02\x03binary\x00", "binary"),
    ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG"),
    ("sheet.csv", b"PK\x03\x04\x14\x00\x06\x00", "zip"),
    ("latin1.csv", "text,label\ncaf\u00e9 au lait,pos\n".encode("cp1252"), "not valid UTF-8"),
    ("ragged.csv", b"text,label\nhello,pos\nworld,neg,extra\n", "line 3 has 3 fields"),
    ("quote.csv", b'text,label\n"unterminated,pos\n', "malformed CSV"),
    ("nolabel.csv", b"text\nhello\n", "no label column"),
    ("notext.csv", b"body,label\nhello,pos\n", "no text column"),
    ("bad.jsonl", b'{"text": "a", "label": "x"}\n{"text": \n', "line 2 is not valid JSON"),
    ("list.jsonl", b'["a", "b"]\n', "not an object"),
    ("emptylabel.csv", b"text,label\nhello,\n", "empty label"),
    ("plain.txt", b"just text\n", "needs labels"),
]


@pytest.mark.parametrize("name,content,words", BAD, ids=[b[0] for b in BAD])
def test_bad_files_raise_one_line_data_error(tmp_path, name, content, words):
    with pytest.raises(DataError) as info:
        load_dataset(write(tmp_path, name, content), "classification")
    message = str(info.value)
    assert words in message and "\n" not in message and name in message


def test_embedding_specific_errors(tmp_path):
    with pytest.raises(DataError, match="score 'high' is not a number"):
        load_dataset(write(tmp_path, "s.csv", "sentence1,sentence2,score\na,b,high\n"), "embedding")
    with pytest.raises(DataError, match="no text column"):
        load_dataset(write(tmp_path, "x.csv", "foo,bar\n1,2\n"), "embedding")


def test_missing_folder_and_too_large(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv", "embedding")
    with pytest.raises(DataError, match="is a folder"):
        load_dataset(tmp_path, "embedding")
    with pytest.raises(DataError, match="limit is"):
        load_dataset(write(tmp_path, "big.txt", "x" * 5000), "embedding", max_bytes=1000)
    with pytest.raises(DataError, match="limit is"):
        load_dataset(b"x" * 5000, "embedding", max_bytes=1000)


def test_utf16_with_bom_is_accepted(tmp_path):
    ds = load_dataset(write(tmp_path, "u16.csv", "text\nhello\n".encode("utf-16")), "embedding")
    assert ds.texts == ["hello"]


def test_detect_task():
    assert detect_task(["text", "label"]) == "classification"
    assert detect_task(["Sentence1", "sentence2", "score"]) == "embedding"
    assert detect_task(["text"]) == "embedding"
    assert detect_task(["foo"]) is None and detect_task([]) is None


def test_map_labels():
    assert map_labels(["pos", "NEG", "neu"], ["neg", "neu", "pos"]) == [2, 0, 1]
    assert map_labels(["1", "0"], ["LABEL_0", "LABEL_1"]) == [1, 0]
    with pytest.raises(DataError) as info:
        map_labels(["pos", "sports", "world", "sports"], ["neg", "neu", "pos"], "d.csv")
    assert "'sports', 'world'" in str(info.value) and "neg, neu, pos" in str(info.value)
