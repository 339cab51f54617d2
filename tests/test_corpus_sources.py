"""Bad input: each case gets an error naming file and line (`fail`) or is repaired/skipped and
counted (`replace`, `skip`). Nothing disappears without a count."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dualmind.sources.documents import read_documents
from dualmind.sources.problems import InputError, Problems
from dualmind.sources.readers import ReadOptions, expand_inputs


def read(paths, policy="replace", **opts):
    problems = Problems(policy)
    docs = list(read_documents([str(p) for p in paths], problems, ReadOptions(**opts)))
    return docs, problems


def test_plain_text_jsonl_parquet_folder_and_glob(tmp_path):
    (tmp_path / "a.txt").write_text("First document.\n\nSecond paragraph.", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"id": "x", "lang": "ru", "text": "Привет, мир."}, ensure_ascii=False)
        + "\n"
        + json.dumps({"input": "Q?", "target": "A."})
        + "\n",
        encoding="utf-8",
    )
    pq.write_table(
        pa.table({"text": ["row one", "row two"], "id": ["r1", "r2"]}), tmp_path / "c.parquet"
    )
    (tmp_path / ".hidden.txt").write_text("not read")
    docs, problems = read([tmp_path])
    assert [d.key for d in docs] == ["a.txt", "x", "b.jsonl:2", "r1", "r2"]
    assert docs[0].path == str(tmp_path / "a.txt")  # messages still name the real file
    assert docs[1].lang == "ru" and docs[2].kind == "qa" and docs[2].target == "A."
    assert docs[4].line == 2  # a Parquet record's "line" is its row number
    assert problems.total() == 0
    assert [p.name for p in expand_inputs([str(tmp_path / "*.txt")])] == ["a.txt"]
    with pytest.raises(InputError, match="glob matches no files"):
        expand_inputs([str(tmp_path / "*.csv")])
    with pytest.raises(InputError, match="no such file or folder"):
        expand_inputs([str(tmp_path / "missing.txt")])


def test_text_is_kept_exactly_and_json_arrays_are_read(tmp_path):
    path = tmp_path / "dos.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n\r\nno newline at end")
    docs, problems = read([path])
    # line ends stay as they were (a lossless lexicon must see the real text); the BOM goes
    assert docs[0].text == "line one\r\nline two\r\n\r\nno newline at end"
    arr = tmp_path / "records.json"
    arr.write_text(
        json.dumps([{"id": "a", "text": "first"}, {"text": 3}, {"id": "c", "text": "third"}])
    )
    docs, problems = read([arr])
    assert [d.key for d in docs] == ["a", "c"]
    assert problems.examples["wrong_type"][0].startswith(f"{arr}:2: ")
    lines = tmp_path / "lines.json"
    lines.write_text(json.dumps({"text": "jsonl under a .json name"}) + "\n")
    assert read([lines])[0][0].text == "jsonl under a .json name"


def test_invalid_utf8_replace_skip_fail(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nbad \xff\xfe line\nlast line\n")
    docs, problems = read([path], "replace")
    assert docs[0].text == "good line\nbad \ufffd\ufffd line\nlast line\n"
    assert problems.counts == {"invalid_utf8": {"replaced": 1}}
    assert problems.examples["invalid_utf8"][0].startswith(f"{path}:2: invalid UTF-8 at byte 4")
    docs, problems = read([path], "skip")
    assert docs[0].text == "good line\nlast line\n"
    assert problems.counts == {"invalid_utf8": {"skipped": 1}}
    with pytest.raises(InputError, match=rf"{path}:2: invalid UTF-8 at byte 4") as e:
        read([path], "fail")
    assert e.value.kind == "invalid_utf8" and e.value.line == 2


def test_empty_and_binary_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    good = tmp_path / "good.txt"
    good.write_text("Some text.")
    docs, problems = read([empty, blank, binary, good], "replace")
    assert [d.text for d in docs] == ["Some text."]
    assert problems.counts == {"binary_file": {"skipped": 1}, "empty_file": {"skipped": 2}}
    assert any("NUL bytes" in e for e in problems.examples["binary_file"])
    for path, kind in ((empty, "empty_file"), (binary, "binary_file")):
        with pytest.raises(InputError, match=str(path)) as e:
            read([path], "fail")
        assert e.value.kind == kind


def test_document_too_long_is_split_or_skipped(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("\n".join(f"line {i} of the book" for i in range(100)), encoding="utf-8")
    docs, problems = read([path], "replace", max_document_bytes=500)
    assert len(docs) > 3 and "".join(d.text for d in docs) == path.read_text()
    assert problems.counts == {"document_too_long": {"replaced": 1}}
    docs, problems = read([path], "skip", max_document_bytes=500)
    assert docs == [] and problems.counts == {"document_too_long": {"skipped": 1}}


def test_malformed_and_wrongly_typed_json_lines(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"id": "ok1", "text": "fine"}),
                '{"id": "broken", "text": "no end',
                json.dumps(["a", "list"]),
                json.dumps({"id": "n", "text": 42}),
                json.dumps({"id": "m", "body": "no text key"}),
                json.dumps({"id": "q", "input": "question", "target": None}),
                json.dumps({"id": "e", "text": "   "}),
                json.dumps({"id": {"nested": 1}, "text": "bad id"}),
                json.dumps({"id": "ok2", "text": "also fine"}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    docs, problems = read([path], "replace")
    assert [d.key for d in docs] == ["ok1", "ok2"]
    assert problems.counts == {
        "malformed_json": {"skipped": 1},
        "wrong_type": {"skipped": 4},
        "missing_text": {"skipped": 1},
        "empty_document": {"skipped": 1},
    }
    where = [e.split(": ")[0] for e in problems.examples["wrong_type"]]
    assert where == [f"{path}:3", f"{path}:4", f"{path}:6", f"{path}:8"]
    with pytest.raises(InputError, match=rf"{path}:2: malformed JSON"):
        read([path], "fail")
    lines = problems.summary_lines()
    assert lines[0] == "input problems (policy replace): 0 replaced, 7 skipped"
    assert any(f"{path}:2" in x for x in lines)


def test_parquet_wrong_column_type_and_corrupt_file(tmp_path):
    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp_path / "ints.parquet")
    docs, problems = read([tmp_path / "ints.parquet"])
    assert docs == [] and problems.counts == {"wrong_type": {"skipped": 3}}
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    docs, problems = read([tmp_path / "corrupt.parquet"])
    assert problems.counts == {"unreadable_file": {"skipped": 1}}
    with pytest.raises(InputError, match="corrupt.parquet: not a readable Parquet file"):
        read([tmp_path / "corrupt.parquet"], "fail")


def test_problems_policy_is_checked():
    with pytest.raises(ValueError, match="errors policy must be one of"):
        Problems("ignore")


def test_keys_without_ids_do_not_depend_on_where_the_data_lies(tmp_path):
    """The train/val split hashes document keys: the same files built from another folder
    must get the same keys, or the held-out set (and every val figure) changes with it."""
    keys = []
    for where in ("one/deep/place", "elsewhere"):
        root = tmp_path / where / "data"
        (root / "en").mkdir(parents=True)
        (root / "en" / "a.txt").write_text("A plain document.", encoding="utf-8")
        (root / "b.jsonl").write_text(json.dumps({"text": "A record."}) + "\n", encoding="utf-8")
        docs, _ = read([root])
        keys.append([d.key for d in docs])
        assert keys[-1] == ["b.jsonl:1", "en/a.txt"]
        docs, _ = read([root / "en" / "a.txt", root / "b.jsonl"])  # files named one by one
        assert [d.key for d in docs] == ["en/a.txt", "b.jsonl:1"]
    assert keys[0] == keys[1]


def test_a_linked_file_is_named_by_its_link_not_its_target(tmp_path):
    cache = tmp_path / "cache" / "blobs"
    cache.mkdir(parents=True)
    (cache / "9f3a1c").write_text(json.dumps({"text": "A record."}) + "\n", encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    (data / "part-0.jsonl").symlink_to(cache / "9f3a1c")
    docs, _ = read([data])
    assert [d.key for d in docs] == ["part-0.jsonl:1"]
