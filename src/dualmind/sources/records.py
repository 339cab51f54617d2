"""Reading records — JSON lines, JSON arrays, Parquet rows — into documents (see sources.py).

A record carries its text under ``text`` (or the configured field), or an ``input``/``target``
pair (a question and its answer); ``id``, ``lang`` and ``source`` are optional strings. Every
problem goes through `Problems.report` with its file and line, as in sources.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from dualmind.sources.problems import InputError, Problems
from dualmind.sources.readers import (
    SNIFF_BYTES,
    ReadOptions,
    SourceDoc,
    open_binary,
    read_lines,
    refuse_binary,
)


def _record_to_doc(
    obj: object, path: Path, name: str, lineno: int, opts: ReadOptions, problems: Problems
) -> SourceDoc | None:
    """One decoded JSON object (or Parquet row) -> a SourceDoc, or None after a counted skip."""
    if not isinstance(obj, dict):
        problems.report(
            "wrong_type", f"expected a JSON object, got {type(obj).__name__}", path, lineno
        )
        return None
    has_pair = "input" in obj or "target" in obj
    if has_pair:
        for key in ("input", "target"):
            if not isinstance(obj.get(key), str):
                problems.report(
                    "wrong_type" if key in obj else "missing_text",
                    f"key {key!r} must be a string, got {type(obj.get(key)).__name__}",
                    path,
                    lineno,
                )
                return None
        text, target = obj["input"], obj["target"]
        kind = obj.get("kind") if obj.get("kind") in ("qa", "pair") else "qa"
    else:
        if opts.text_field not in obj:
            problems.report(
                "missing_text",
                f"no key {opts.text_field!r} (and no input/target pair)",
                path,
                lineno,
            )
            return None
        text, target, kind = obj[opts.text_field], None, "doc"
        if not isinstance(text, str):
            problems.report(
                "wrong_type",
                f"key {opts.text_field!r} must be a string, got {type(text).__name__}",
                path,
                lineno,
            )
            return None
    for key in ("id", "lang", "source"):
        v = obj.get(key)
        if v is not None and not isinstance(v, (str, int)) or isinstance(v, bool):
            problems.report(
                "wrong_type", f"key {key!r} must be a string, got {type(v).__name__}", path, lineno
            )
            return None
    if len(text.encode("utf-8")) > opts.max_document_bytes:
        action = problems.report(
            "document_too_long",
            f"record text is longer than max_document_bytes={opts.max_document_bytes}; "
            "cut at the limit",
            path,
            lineno,
        )
        if action == "skip":
            return None
        text = text.encode("utf-8")[: opts.max_document_bytes].decode("utf-8", errors="ignore")
    if not text.strip() or (target is not None and not target.strip()):
        problems.report("empty_document", "record text is empty", path, lineno)
        return None
    key = str(obj["id"]) if obj.get("id") is not None else f"{name}:{lineno}"
    lang = obj.get("lang")
    return SourceDoc(
        key=key,
        text=text,
        kind=kind,
        lang=None if lang is None else str(lang).lower(),
        path=str(path),
        line=lineno,
        target=target,
        source=None if obj.get("source") is None else str(obj["source"]),
    )


def read_jsonl_file(
    path: Path, name: str, opts: ReadOptions, problems: Problems
) -> Iterator[SourceDoc]:
    with open_binary(path) as f:
        if refuse_binary(f, path, problems, "JSON lines"):
            return
        any_line = False
        for lineno, line, _ in read_lines(f, path, opts, problems, long_lines="refuse"):
            if not line.strip():
                continue  # blank lines separate nothing in JSONL; tolerated without a count
            any_line = True
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problems.report(
                    "malformed_json", f"malformed JSON: {e.msg} (column {e.colno})", path, lineno
                )
                continue
            doc = _record_to_doc(obj, path, name, lineno, opts, problems)
            if doc is not None:
                yield doc
        if not any_line:
            problems.report("empty_file", "file holds no JSON records", path)


def read_json_file(
    path: Path, name: str, opts: ReadOptions, problems: Problems
) -> Iterator[SourceDoc]:
    """`*.json`: a JSON array of records (the "line" in messages is the record's 1-based
    position), or, when it does not start with "[", JSON lines under another name."""
    with open_binary(path) as f:
        head = f.read(SNIFF_BYTES)
    if not head.lstrip().startswith(b"["):
        yield from read_jsonl_file(path, name, opts, problems)
        return
    size = path.stat().st_size
    if size > opts.max_document_bytes:
        # An array is parsed whole and cannot be read in parts; leaving it out would lose every
        # record in it for the sake of a memory limit, so it is refused under every policy.
        raise InputError(
            "document_too_long",
            f"a JSON array file of {size} bytes is larger than "
            f"max_document_bytes={opts.max_document_bytes}, and an array cannot be read in parts, "
            f"so the file is refused (under every --errors policy): pass --max-document-bytes "
            f"{size} or more, or convert it to JSON lines",
            path,
        )
    with open_binary(path) as f:
        raw = f.read()
    try:
        records = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        problems.report("invalid_utf8", f"invalid UTF-8 at byte {e.start} of the file", path)
        return
    except json.JSONDecodeError as e:
        problems.report("malformed_json", f"malformed JSON: {e.msg} (line {e.lineno})", path)
        return
    if not isinstance(records, list) or not records:
        problems.report("empty_file", "JSON array holds no records", path)
        return
    for i, obj in enumerate(records, start=1):
        doc = _record_to_doc(obj, path, name, i, opts, problems)
        if doc is not None:
            yield doc


def read_parquet_file(
    path: Path, name: str, opts: ReadOptions, problems: Problems
) -> Iterator[SourceDoc]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt or non-Parquet file
        problems.report("unreadable_file", f"not a readable Parquet file: {e}", path)
        return
    names = set(pf.schema_arrow.names)
    wanted = [
        c
        for c in (opts.text_field, "id", "lang", "source", "input", "target", "kind")
        if c in names
    ]
    if opts.text_field not in names and not {"input", "target"} <= names:
        problems.report(
            "missing_text", f"no column {opts.text_field!r} (columns: {sorted(names)})", path
        )
        return
    if pf.metadata.num_rows == 0:
        problems.report("empty_file", "Parquet file has no rows", path)
        return
    row = 0
    for batch in pf.iter_batches(columns=wanted, batch_size=1024):
        for rec in batch.to_pylist():
            row += 1  # "line" of a Parquet file = 1-based row number
            rec = {k: v for k, v in rec.items() if v is not None or k == opts.text_field}
            doc = _record_to_doc(rec, path, name, row, opts, problems)
            if doc is not None:
                yield doc
