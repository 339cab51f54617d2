"""All documents of a list of inputs (files, folders, globs), each file read by the reader of its
format: plain text (dualmind.sources.readers) or records (JSON lines, JSON, Parquet:
dualmind.sources.records). Kept apart from both so neither reader imports the other's caller."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator

from dualmind.sources.problems import Problems
from dualmind.sources.readers import (
    ReadOptions,
    SourceDoc,
    expand_inputs,
    file_format,
    read_text_file,
    source_names,
)
from dualmind.sources.records import read_json_file, read_jsonl_file, read_parquet_file


def read_documents(
    inputs: Iterable[str | os.PathLike], problems: Problems, opts: ReadOptions | None = None
) -> Iterator[SourceDoc]:
    """All documents of all inputs, in a deterministic order (inputs in order, folders sorted)."""
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
