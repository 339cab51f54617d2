"""Lines longer than max_line_bytes lose nothing: plain text is read in pieces and joined again;
a JSON record (which cannot be split) refuses its file under every policy, naming file, line,
size and the option that raises the limit. Limits are scaled down (1,000 bytes for 16 MiB) except
in the one test that replays the reported case: a 50 MiB file that is one line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dualmind.sources.documents import read_documents
from dualmind.sources.problems import InputError, Problems
from dualmind.sources.readers import ReadOptions, read_lines


def read(paths, policy="replace", **opts):
    problems = Problems(policy)
    docs = list(read_documents([str(p) for p in paths], problems, ReadOptions(**opts)))
    return docs, problems


@pytest.mark.parametrize("policy", ["replace", "skip", "fail"])
def test_a_long_text_line_reaches_the_reader_whole_under_every_policy(tmp_path, policy):
    # words of 1-3 byte characters, and a 3,000-byte run without whitespace that must be cut
    # between characters, never inside one
    line = " ".join(["ночь", "dark", "中文字", "é"] * 300) + " " + "ж" * 1500
    text = "first line\r\n" + line + "\r\n" + "last line, no newline"
    path = tmp_path / "long.txt"
    path.write_bytes(text.encode("utf-8"))
    docs, problems = read([path], policy, max_line_bytes=1000)
    assert [d.text for d in docs] == [text]
    assert problems.total() == 0  # a long text line is no problem: nothing to count or refuse


def test_long_lines_are_cut_after_whitespace_into_pieces_within_the_limit():
    line = ("hyperphrase " * 300).encode()  # 3,600 bytes, whitespace every 12
    f = io.BytesIO(b"short\n" + line + b"\n")
    pieces = list(read_lines(f, Path("x.txt"), ReadOptions(max_line_bytes=1000), Problems(),
                             long_lines="split"))
    assert [n for n, _, _ in pieces] == [1, 2, 2, 2, 2]  # the long line is line 2, in 4 pieces
    assert pieces[0] == (1, "short", "\n")
    assert all(len(t.encode()) <= 1000 and t.endswith(" ") for _, t, _ in pieces[1:])
    assert [e for _, _, e in pieces[1:]] == ["", "", "", "\n"]  # only the last piece ends the line
    assert "".join(t for _, t, _ in pieces[1:]).encode() == line


def test_a_split_document_keeps_whole_words_and_every_byte(tmp_path):
    path = tmp_path / "one_line_book.txt"
    text = "слово word " * 400 + "\n \n"  # one long line, then a line of whitespace only
    path.write_text(text, encoding="utf-8")
    docs, problems = read([path], "replace", max_line_bytes=300, max_document_bytes=1000)
    assert len(docs) > 3 and "".join(d.text for d in docs) == text
    # every cut fell after a space: each document starts and ends on a whole word
    assert all(d.text.split(" ")[0] in ("слово", "word") for d in docs)
    assert all(d.text.rstrip().split(" ")[-1] in ("слово", "word") for d in docs)
    assert problems.counts == {"document_too_long": {"replaced": 1}}


def test_invalid_utf8_in_a_long_line_is_placed_in_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"a" * 2500 + b"\xff" + b"b" * 10 + b"\n")
    with pytest.raises(InputError, match=rf"{path}:1: invalid UTF-8 at byte 2500 of the line"):
        read([path], "fail", max_line_bytes=1000)
    docs, _ = read([path], "replace", max_line_bytes=1000)
    assert docs[0].text == "a" * 2500 + "\ufffd" + "b" * 10 + "\n"


@pytest.mark.parametrize("policy", ["replace", "skip", "fail"])
def test_a_json_record_longer_than_the_limit_refuses_the_file(tmp_path, policy):
    path = tmp_path / "records.jsonl"
    long_record = json.dumps({"text": "ж" * 2000}, ensure_ascii=False) + "\n"
    path.write_text(json.dumps({"text": "ok"}) + "\n" + long_record, encoding="utf-8")
    size = len(long_record.encode())
    with pytest.raises(InputError) as e:
        read([path], policy, max_line_bytes=1000)
    assert e.value.kind == "line_too_long" and e.value.line == 2 and e.value.path == str(path)
    assert str(e.value) == (
        f"{path}:2: line of {size} bytes is longer than max_line_bytes=1000; a JSON record "
        f"cannot be split, so the file is refused (under every --errors policy): pass "
        f"--max-line-bytes {size} or more to read it [line_too_long]"
    )
    docs, problems = read([path], policy, max_line_bytes=size)  # the value the message names
    assert [d.text for d in docs] == ["ok", "ж" * 2000] and problems.total() == 0


@pytest.mark.parametrize("policy", ["replace", "skip"])
def test_a_json_array_over_the_document_limit_refuses_the_file(tmp_path, policy):
    path = tmp_path / "records.json"
    path.write_text(json.dumps([{"text": f"record {i}"} for i in range(100)]))
    size = path.stat().st_size
    with pytest.raises(InputError, match=rf"{path}: a JSON array file of {size} bytes .* "
                                         rf"--max-document-bytes {size} or more") as e:
        read([path], policy, max_document_bytes=1000)
    assert e.value.kind == "document_too_long"
    assert len(read([path], policy, max_document_bytes=size)[0]) == 100


def test_limits_too_small_to_hold_a_character_are_refused():
    with pytest.raises(ValueError, match="max_line_bytes must be >= 4, got 3"):
        ReadOptions(max_line_bytes=3)


def test_the_reported_case_a_50_mib_one_line_file_loses_nothing(tmp_path):
    """The default 16 MiB limit once kept 32% of this file and exited 0."""
    path = tmp_path / "one_line.txt"
    chunk = ("ночь dark " * 100_000).encode()  # 1.4 MB
    with open(path, "wb") as f:
        while f.tell() < 50 << 20:
            f.write(chunk)
    docs, problems = read([path], "fail")
    assert len(docs) == 1 and problems.total() == 0
    assert docs[0].text.encode() == path.read_bytes()
    # a JSON record of that size is drained in 1 MiB reads and refused, not cut
    jsonl = tmp_path / "one_record.jsonl"
    with open(jsonl, "wb") as f:
        f.write(b'{"text": "')
        while f.tell() < 50 << 20:
            f.write(chunk)
        f.write(b'"}\n')
    with pytest.raises(InputError, match=rf"{jsonl}:1: line of {jsonl.stat().st_size} bytes"):
        read([jsonl], "replace")
