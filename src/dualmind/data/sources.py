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

    key: str  # the document's id: the record's own, else file name[:line] (see source_names)
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


def source_names(files: list[Path]) -> dict[Path, str]:
    """Each file's name relative to the deepest folder that holds them all (POSIX form).

    A record without an id is keyed ``name:line`` (a text file: ``name``), and the train/val
    split hashes the keys: keyed by absolute path, the same data built from another folder
    (another checkout, a temporary directory) would be split differently, and its val figures
    would not be comparable. Relative names move with the data. Links are not followed (a file
    linked from a download cache keeps its own name, not the cache's blob name); inputs added
    from outside the common folder move it, and so rename the others."""
    if not files:
        return {}
    absolute = [Path(os.path.abspath(f)) for f in files]
    root = Path(os.path.commonpath([a.parent for a in absolute]))
    return {f: a.relative_to(root).as_posix() for f, a in zip(files, absolute, strict=True)}


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


def refuse_binary(f: BinaryIO, path: Path, problems: Problems, expected: str) -> bool:
    """True, counted as ``binary_file``, when the file's first bytes are not text; otherwise
    rewinds it for reading. ``expected`` names what it should have been ("text", "JSON lines")."""
    reason = looks_binary(f.read(SNIFF_BYTES))
    if reason:
        problems.report("binary_file", f"not {expected}: {reason}", path)
        return True
    f.seek(0)
    return False


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


def read_text_file(
    path: Path, name: str, opts: ReadOptions, problems: Problems
) -> Iterator[SourceDoc]:
    """A plain text file is one document, its line ends kept as they are (a leading UTF-8 byte
    order mark is not text and is dropped). One larger than max_document_bytes is split at line
    boundaries under `replace` (counted), left out under `skip`."""
    with open_binary(path) as f:
        if refuse_binary(f, path, problems, "text"):
            return
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
                    key=f"{name}#{part_no}", text="".join(parts), path=str(path), line=first_line
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
        key = name if part_no == 0 else f"{name}#{part_no}"
        yield SourceDoc(key=key, text=text, path=str(path), line=first_line)


def read_documents(
    inputs: Iterable[str | os.PathLike], problems: Problems, opts: ReadOptions | None = None
) -> Iterator[SourceDoc]:
    """All documents of all inputs, in a deterministic order (inputs in order, folders sorted)."""
    # The record readers live beside this module and import its pieces: imported here.
    from dualmind.data.source_records import read_json_file, read_jsonl_file, read_parquet_file

    opts = opts or ReadOptions()
    files = expand_inputs(inputs)
    names = source_names(files)
    for path in files:
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
            yield from reader(path, names[path], opts, problems)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            problems.report("unreadable_file", f"cannot read: {e}", path)
