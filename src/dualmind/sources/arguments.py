"""The readers' limits as command-line options, shared by `dualmind corpus build` and
`dualmind lexicon build`, which read their inputs with the same reader."""

from __future__ import annotations

import argparse


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The reading limits, shared by `corpus build` and `lexicon build` (same reader)."""
    from dualmind.sources.readers import DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_MAX_LINE_BYTES

    parser.add_argument(
        "--max-line-bytes",
        type=int,
        default=DEFAULT_MAX_LINE_BYTES,
        help="most bytes of one line held at once (default 16 MiB): longer text lines are read "
        "in pieces; a longer JSON-lines record refuses its file",
    )
    parser.add_argument(
        "--max-document-bytes",
        type=int,
        default=DEFAULT_MAX_DOCUMENT_BYTES,
        help="longest document (default 64 MiB): a longer text file is split into documents, "
        "a longer JSON array file is refused",
    )
