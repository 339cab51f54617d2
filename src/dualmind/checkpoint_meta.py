"""The dualmind part of every training checkpoint: ``checkpoint["dualmind"]`` (stage, lexicon
fingerprint, model and decoder shapes, core fingerprint, RNG streams, ...), and the lexicon check
every reader of a checkpoint makes. Re-exported by dualmind.lit, where it was first defined."""

from __future__ import annotations

CHECKPOINT_KEY = "dualmind"
CHECKPOINT_FORMAT = 1


class LexiconMismatchError(ValueError):
    """A checkpoint trained with one lexicon loaded against shards of another."""


def checkpoint_metadata(checkpoint: dict) -> dict:
    meta = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(meta, dict):
        raise ValueError(
            "not a dualmind checkpoint (no 'dualmind' metadata: lexicon fingerprint, stage)"
        )
    return meta


def check_lexicon(meta: dict, expected: str | None, where: str = "checkpoint") -> None:
    found = meta.get("lexicon_fingerprint")
    if expected is not None and found is not None and found != expected:
        raise LexiconMismatchError(
            f"{where} was trained with lexicon {found}, but the data uses lexicon {expected}; "
            f"a core only understands the symbols of its own lexicon — use shards built with "
            f"lexicon {found}, or start a fresh run"
        )
