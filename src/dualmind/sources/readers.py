"""Reading corpus inputs — plain text, JSON lines, Parquet, folders, globs — into documents.

Every problem (invalid UTF-8, binary or empty files, malformed or wrongly-typed JSON) goes
through `Problems.report`, so it either raises (policy `fail`) or is counted with its file and
line (`replace`, `skip`). Nothing is dropped without a count. A plain-text line longer than
max_line_bytes is read in pieces and loses nothing; a JSON record that long is refused with an
error naming the option that raises the limit (see read_lines).

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

from dualmind.sources.problems import InputError, Problems

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


MIN_LINE_BYTES = 4  # a piece of a long line must hold a whole UTF-8 character


@dataclass
class ReadOptions:
    text_field: str = "text"
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # held at once; longer text lines come in pieces
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES

    def __post_init__(self) -> None:
        problem = limits_problem(self.max_line_bytes, self.max_document_bytes)
        if problem:
            raise ValueError(problem)


def limits_problem(max_line_bytes: int, max_document_bytes: int) -> str | None:
    """Why these reading limits cannot work, or None (BuildOptions and the CLIs ask too)."""
    if max_line_bytes < MIN_LINE_BYTES:
        return f"max_line_bytes must be >= {MIN_LINE_BYTES}, got {max_line_bytes}"
    if max_document_bytes < 1:
        return f"max_document_bytes must be >= 1, got {max_document_bytes}"
    return None


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


WHITESPACE = b" \t\x0b\x0c"  # where a long text line is cut (never inside \r\n)


def read_lines(
    f: BinaryIO, path: Path, opts: ReadOptions, problems: Problems, long_lines: str = "refuse"
) -> Iterator[tuple[int, str, str]]:
    """Yield (line number, decoded text, line end: "\n", "\r\n" or ""), applying the UTF-8
    policy. No more than max_line_bytes of a line is ever held at once.

    A line longer than max_line_bytes is never cut short:
      long_lines="split"   (plain text) it is yielded in pieces, each cut after whitespace near
                           the limit (else on a character boundary), all but the last with line
                           end ""; joined, the pieces are the line exactly. Invalid UTF-8 in a
                           piece is replaced or left out piece by piece.
      long_lines="refuse"  (JSON lines: a record cannot be split) InputError under every
                           policy, naming file, line, size and the option that raises the limit.
    """
    if long_lines not in ("split", "refuse"):
        raise ValueError(f"long_lines must be 'split' or 'refuse', got {long_lines!r}")
    limit = opts.max_line_bytes
    lineno = 1
    offset = 0  # of the next piece in its line, in bytes (for messages)
    pending = b""  # the start of a long line's next piece, already read
    while True:
        raw = pending + f.readline(limit + 1 - len(pending))
        pending = b""
        if not raw:
            return
        whole = raw.endswith(b"\n") or len(raw) <= limit
        if not whole and long_lines == "refuse":
            _refuse_long_line(f, path, lineno, len(raw), limit)
        if whole:
            eol = b"\r\n" if raw.endswith(b"\r\n") else b"\n" if raw.endswith(b"\n") else b""
            raw = raw[: len(raw) - len(eol)]
        else:
            cut = _piece_end(raw, limit)
            raw, pending, eol = raw[:cut], raw[cut:], b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            action = problems.report(
                "invalid_utf8",
                f"invalid UTF-8 at byte {offset + e.start} of the line "
                f"({raw[e.start : e.start + 4]!r})",
                path,
                lineno,
            )
            text = None if action == "skip" else raw.decode("utf-8", errors="replace")
        if text is not None:
            yield lineno, text, eol.decode("ascii")
        if whole:
            lineno, offset = lineno + 1, 0
        else:
            offset += len(raw)


def _piece_end(raw: bytes, limit: int) -> int:
    """Where to cut the first piece of a line longer than the limit (``raw`` holds limit + 1
    bytes of it): after the last whitespace in the second half of the limit, so words stay whole
    where a document is later split; else before the character that straddles the limit."""
    space = max(raw.rfind(bytes([c]), limit // 2, limit) for c in WHITESPACE)
    if space >= 0:
        return space + 1
    cut = limit
    while cut > max(1, limit - 3) and 0x80 <= raw[cut] < 0xC0:  # a UTF-8 continuation byte
        cut -= 1
    return cut


def _refuse_long_line(f: BinaryIO, path: Path, lineno: int, seen: int, limit: int) -> None:
    """Measure the rest of the line in 1 MiB reads (never held whole), then raise."""
    total = seen
    while True:
        more = f.readline(READ_CHUNK)
        total += len(more)
        if not more or more.endswith(b"\n"):
            break
    raise InputError(
        "line_too_long",
        f"line of {total} bytes is longer than max_line_bytes={limit}; a JSON record cannot be "
        f"split, so the file is refused (under every --errors policy): pass "
        f"--max-line-bytes {total} or more to read it",
        path,
        lineno,
    )


def read_text_file(
    path: Path, name: str, opts: ReadOptions, problems: Problems
) -> Iterator[SourceDoc]:
    """A plain text file is one document, its line ends kept as they are (a leading UTF-8 byte
    order mark is not text and is dropped). A line longer than max_line_bytes is read in pieces
    and joined again, so no byte is lost. A file larger than max_document_bytes is split at line
    (or piece) boundaries under `replace` (counted), left out under `skip`."""
    with open_binary(path) as f:
        if refuse_binary(f, path, problems, "text"):
            return
        parts: list[str] = []
        size = 0
        part_no = 0
        first_line = 1
        too_long_reported = False
        first = True
        held: SourceDoc | None = None
        for lineno, line, eol in read_lines(f, path, opts, problems, long_lines="split"):
            if first and lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            first = False
            line += eol
            n = len(line.encode("utf-8"))
            if size + n > opts.max_document_bytes and parts:
                if not too_long_reported:
                    too_long_reported = True
                    action = problems.report(
                        "document_too_long",
                        f"text is longer than max_document_bytes={opts.max_document_bytes}; "
                        "split into several documents at line boundaries (a long line: at "
                        "the pieces it was read in)",
                        path,
                        lineno,
                    )
                    if action == "skip":
                        return
                if held is not None:
                    yield held
                # held back one part: a last part of whitespace only joins it (below), as a
                # document of its own would be dropped as empty and lose those bytes
                held = SourceDoc(
                    key=f"{name}#{part_no}", text="".join(parts), path=str(path), line=first_line
                )
                part_no += 1
                parts, size, first_line = [], 0, lineno
            parts.append(line)
            size += n
        text = "".join(parts)
        if held is not None and not text.strip():
            held.text += text
            yield held
            return
        if held is not None:
            yield held
        if not text.strip():
            problems.report("empty_file", "file holds no text", path)
            return
        key = name if part_no == 0 else f"{name}#{part_no}"
        yield SourceDoc(key=key, text=text, path=str(path), line=first_line)

