"""Opening a built corpus for reading: its shards (checked against the lexicon a run expects) and
the expected lexicon itself (data.lexicon: a folder or a fingerprint), with errors that name the
config key and the path. Shared by the training datamodules, evaluation and `dualmind export`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dualmind.lexicon.lexicon import Lexicon


class DataConfigError(ValueError):
    """Shards that cannot feed this model/config; the message names the key or path."""


FINGERPRINT_RE = re.compile(r"^[0-9a-fA-F]{8,128}$")


def open_shards(corpus_dir: str | Path, split: str, expected_fingerprint: str | None = None) -> Any:
    """ShardSet.open with errors that name the config key and the path."""
    path = Path(corpus_dir)
    if not path.exists():
        raise DataConfigError(
            f"data.dir={corpus_dir}: no such folder; build a corpus first with "
            f"`dualmind corpus build ... --out {corpus_dir}` (or point data.dir at one)"
        )
    from dualmind.data.shards import ShardError, ShardSet

    try:
        shards = ShardSet.open(path, split=split)
    except ShardError as err:
        raise DataConfigError(f"data.dir={corpus_dir}: {err}") from err
    if expected_fingerprint is not None and shards.lexicon_fingerprint != expected_fingerprint:
        raise DataConfigError(
            f"data.dir={corpus_dir}: shards were built with lexicon {shards.lexicon_fingerprint}, "
            f"but this run expects lexicon {expected_fingerprint} "
            "(data.lexicon or the checkpoint); "
            f"rebuild the corpus with the same lexicon or point data.dir at a matching one"
        )
    return shards


def resolve_expected_fingerprint(lexicon: str | None) -> str | None:
    """data.lexicon: None, a lexicon folder, or a fingerprint string."""
    if lexicon is None:
        return None
    if Path(lexicon).is_dir():
        return Lexicon.load(lexicon).fingerprint
    if FINGERPRINT_RE.match(str(lexicon)):
        return str(lexicon).lower()
    raise DataConfigError(f"data.lexicon={lexicon}: neither a lexicon folder nor a hex fingerprint")
