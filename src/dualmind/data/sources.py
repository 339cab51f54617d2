"""Reading corpus inputs — plain text, JSON lines, Parquet, folders, globs — into documents.

Every problem (invalid UTF-8, binary or empty files, over-long lines, malformed or wrongly-typed
JSON) goes through `Problems.report`, so it either raises (policy `fail`) or is counted with
its file and line (`replace`, `skip`). Nothing is dropped without a count.

Formats by file name: `*.jsonl`, `*.ndjson` (optionally `.gz`) -> one JSON object per line;
`*.json` -> a JSON array of such objects (or JSON lines); `*.parquet` -> one row per record;
anything else -> plain UTF-8 text, one document per file, line ends kept as they are.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dualmind.data.problems import InputError, Problems

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
SNIFF_BYTES = 8192
READ_CHUNK = 1 << 20
DEFAULT_MAX_LINE_BYTES = 16 << 20  # one line of text or JSON
DEFAULT_MAX_DOCUMENT_BYTES = 64 << 20  # one document (a whole text file, or a JSON record's text)


@dataclass
class SourceDoc:
    """One unit of input: a document (kind 'doc') or a question/answer or text pair."""

    key: str  # the document's id (from the record, or file[:line])
    text: str  # the document text; for qa/pair the input side
    kind: str = "doc"  # "doc" | "qa" | "pair"
    lang: str | None = None  # as declared by the input; None = detect
    path: str = ""
    line: int | None = None
    target: str | None = None
    source: str | None = None


@dataclass
class ReadOptions:
    text_field: str = "text"
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named by paths, folders (recursive, sorted, hidden entries skipped) and globs.

    A path that does not exist or a glob that matches nothing is an error under every policy:
    it is a mistake in the command, not in the data."""
    files: list[Path] = []
    for spec in inputs:
        spec_s = str(spec)
        p = Path(spec_s)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                raise InputError("empty_input", "folder holds no files", p)
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif any(c in spec_s for c in "*?["):
            found = sorted(Path(f) for f in glob.glob(spec_s, recursive=True) if Path(f).is_file())
            if not found:
                raise InputError("empty_input", "glob matches no files", spec_s)
            files.extend(found)
        else:
            raise InputError("empty_input", "no such file or folder", spec_s)
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


def file_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith((".json", ".json.gz")):
        return "json"
    return "text"


def open_binary(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def looks_binary(head: bytes) -> str | None:
    """A reason why these first bytes are not text, or None."""
    if b"\x00" in head:
        return "contains NUL bytes (a binary file, or UTF-16/32 text: convert it to UTF-8)"
    if head:
        control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
        if control / len(head) > 0.3:
            return f"{control / len(head):.0%} control bytes in the first {len(head)} bytes"
    return None


def read_lines(
    f: BinaryIO, path: Path, opts: ReadOptions, problems: Problems
) -> Iterator[tuple[int, str, str]]:
    """Yield (line number, decoded line without its line end, the line end: "\n", "\r\n" or ""),
    applying the line-length and UTF-8 policies. Over-long lines are never held in memory
    beyond the limit."""
    limit = opts.max_line_bytes
    lineno = 0
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            total = len(raw)
            ending = b""
            while True:  # drain the rest of the line in chunks
                more = f.readline(READ_CHUNK)
                total += len(more)
                if not more or more.endswith(b"\n"):
                    ending = b"\r\n" if more.endswith(b"\r\n") else more[-1:] if more else b""
                    break
            action = problems.report(
                "line_too_long",
                f"line of {total} bytes is longer than max_line_bytes={limit}",
                path,
                lineno,
            )
            if action == "skip":
                continue
            raw = raw[:limit]
            # cut back to a whole UTF-8 character
            for back in range(4):
                try:
                    raw[: len(raw) - back].decode("utf-8")
                    raw = raw[: len(raw) - back]
                    break
                except UnicodeDecodeError:
                    continue
            raw += ending
        eol = "\r\n" if raw.endswith(b"\r\n") else "\n" if raw.endswith(b"\n") else ""
        raw = raw[: len(raw) - len(eol)]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            action = problems.report(
                "invalid_utf8",
                f"invalid UTF-8 at byte {e.start} of the line ({raw[e.start : e.start + 4]!r})",
                path,
                lineno,
            )
            if action == "skip":
                continue
            line = raw.decode("utf-8", errors="replace")
        yield lineno, line, eol


def read_text_file(path: Path, opts: ReadOptions, problems: Problems) -> Iterator[SourceDoc]:
    """A plain text file is one document, its line ends kept as they are (a leading UTF-8 byte
    order mark is not text and is dropped). One larger than max_document_bytes is split at line
    boundaries under `replace` (counted), left out under `skip`."""
    with open_binary(path) as f:
        reason = looks_binary(f.read(SNIFF_BYTES))
        if reason:
            problems.report("binary_file", f"not text: {reason}", path)
            return
        f.seek(0)
        parts: list[str] = []
        size = 0
        part_no = 0
        first_line = 1
        too_long_reported = False
        for lineno, line, eol in read_lines(f, path, opts, problems):
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            line += eol
            n = len(line.encode("utf-8"))
            if size + n > opts.max_document_bytes and parts:
                if not too_long_reported:
                    too_long_reported = True
                    action = problems.report(
                        "document_too_long",
                        f"text is longer than max_document_bytes={opts.max_document_bytes}; "
                        "split into several documents at line boundaries",
                        path,
                        lineno,
                    )
                    if action == "skip":
                        return
                yield SourceDoc(
                    key=f"{path}#{part_no}", text="".join(parts), path=str(path), line=first_line
                )
                part_no += 1
                parts, size, first_line = [], 0, lineno
            parts.append(line)
            size += n
        text = "".join(parts)
        if not text.strip():
            if part_no == 0:
                problems.report("empty_file", "file holds no text", path)
            return
        key = str(path) if part_no == 0 else f"{path}#{part_no}"
        yield SourceDoc(key=key, text=text, path=str(path), line=first_line)


def _record_to_doc(
    obj: object, path: Path, lineno: int, opts: ReadOptions, problems: Problems
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
    key = str(obj["id"]) if obj.get("id") is not None else f"{path}:{lineno}"
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


def read_jsonl_file(path: Path, opts: ReadOptions, problems: Problems) -> Iterator[SourceDoc]:
    with open_binary(path) as f:
        reason = looks_binary(f.read(SNIFF_BYTES))
        if reason:
            problems.report("binary_file", f"not JSON lines: {reason}", path)
            return
        f.seek(0)
        any_line = False
        for lineno, line, _ in read_lines(f, path, opts, problems):
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
            doc = _record_to_doc(obj, path, lineno, opts, problems)
            if doc is not None:
                yield doc
        if not any_line:
            problems.report("empty_file", "file holds no JSON records", path)


def read_json_file(path: Path, opts: ReadOptions, problems: Problems) -> Iterator[SourceDoc]:
    """`*.json`: a JSON array of records (the "line" in messages is the record's 1-based
    position), or, when it does not start with "[", JSON lines under another name."""
    with open_binary(path) as f:
        head = f.read(SNIFF_BYTES)
    if not head.lstrip().startswith(b"["):
        yield from read_jsonl_file(path, opts, problems)
        return
    if path.stat().st_size > opts.max_document_bytes:
        problems.report(
            "document_too_long",
            f"a JSON array file larger than max_document_bytes={opts.max_document_bytes} "
            "(use JSON lines for big inputs)",
            path,
        )
        return
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
        doc = _record_to_doc(obj, path, i, opts, problems)
        if doc is not None:
            yield doc


def read_parquet_file(path: Path, opts: ReadOptions, problems: Problems) -> Iterator[SourceDoc]:
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
            doc = _record_to_doc(rec, path, row, opts, problems)
            if doc is not None:
                yield doc


def read_documents(
    inputs: Iterable[str | os.PathLike], problems: Problems, opts: ReadOptions | None = None
) -> Iterator[SourceDoc]:
    """All documents of all inputs, in a deterministic order (inputs in order, folders sorted)."""
    opts = opts or ReadOptions()
    for path in expand_inputs(inputs):
        try:
            if path.stat().st_size == 0:
                problems.report("empty_file", "file is empty (0 bytes)", path)
                continue
            fmt = file_format(path)
            reader = {
                "json": read_json_file,
                "jsonl": read_jsonl_file,
                "parquet": read_parquet_file,
                "text": read_text_file,
            }[fmt]
            yield from reader(path, opts, problems)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            problems.report("unreadable_file", f"cannot read: {e}", path)
