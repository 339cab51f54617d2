"""Sub-word pieces: the fallback for words outside the vocabulary.

A byte-level BPE (trained with the compiled ``tokenizers`` library) whose alphabet is all
256 bytes, so *any* string splits into pieces and nothing is ever unknown. Piece units
are stored in the lexicon as the two units they merge (``parts``), so the BPE model is
rebuilt from the unit table alone when a lexicon is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=1)
def byte_chars() -> list[str]:
    """Byte -> printable character, the reversible mapping byte-level BPE works on.

    Printable Latin-1 bytes map to themselves; the rest (controls, space, ...) are
    shifted to U+0100 and up, so every byte string becomes a printable string.
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) \
        + list(range(0xAE, 0xFF + 1))
    out: dict[int, str] = {b: chr(b) for b in keep}
    shift = 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + shift)
            shift += 1
    return [out[b] for b in range(256)]


def to_byte_string(data: bytes) -> str:
    table = byte_chars()
    return "".join(table[b] for b in data)


def train_merges(words: Iterable[str], n_merges: int) -> list[tuple[bytes, bytes]]:
    """Learn up to ``n_merges`` byte-level BPE merges from an iterable of words.

    Each item is one pre-token (e.g. " the"); its frequency is how often it appears.
    Returns merges in order, as pairs of byte strings.
    """
    if n_merges <= 0:
        return []
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # No splitting: the caller already hands over single pre-tokens.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=256 + n_merges,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(words, trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    inverse = {c: b for b, c in enumerate(byte_chars())}
    out = []
    for m in merges:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        out.append((bytes(inverse[c] for c in a), bytes(inverse[c] for c in b)))
    return out


class PieceModel:
    """Splits a string into piece unit ids (compiled BPE from ``tokenizers``)."""

    def __init__(self, vocab: dict[bytes, int], merges: list[tuple[bytes, bytes]]):
        from tokenizers import Tokenizer, models, pre_tokenizers

        bs = to_byte_string
        self._model = Tokenizer(
            models.BPE(
                vocab={bs(k): v for k, v in vocab.items()},
                merges=[(bs(a), bs(b)) for a, b in merges],
            )
        )
        self._model.pre_tokenizer = pre_tokenizers.ByteLevel(
            add_prefix_space=False, use_regex=False
        )

    def split(self, text: str) -> list[int]:
        if not text:
            return []
        return self._model.encode(text, add_special_tokens=False).ids

    def split_batch(self, texts: list[str]) -> list[list[int]]:
        # One call at a time on purpose: ``encode_batch`` starts tokenizers' thread pool,
        # and a process that forks workers afterwards (the corpus build) gets warnings
        # and loses that parallelism in the children anyway.
        encode = self._model.encode
        return [encode(t, add_special_tokens=False).ids for t in texts]

# Pieces only serve words outside the vocabulary, i.e. rare ones, so they are trained on
# word *types* (each distinct pre-token or lemma once): frequent words, which are whole
# units anyway, must not spend the piece budget. Measured on the demo corpus: types give
# fewer units per held-out Russian word than counts capped at 4 or 64.
PIECE_WEIGHT_CAP = 1
