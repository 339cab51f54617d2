"""What the ``lossless`` and ``semantic`` levels share when they learn a vocabulary and
show a unit: the type-checked text feed, the piece/word budget split, the multi-word
merge rounds and a unit's gloss. Each level keeps only what differs (its units)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .merges import MergeTable, learn_rounds
from .pieces import PIECE_WEIGHT_CAP
from .units import Unit
from .vocab import UnitTable


@dataclass(frozen=True)
class BuildOptions:
    """The vocabulary-learning settings of both levels (``Lexicon.build``'s DEFAULTS)."""

    vocab_size: int
    piece_merges: int
    phrase_share: float
    max_n: int
    min_count: int
    phrase_min_count: int
    rounds: int


class TextFeed:
    """Iterate training texts: each must be a ``str``; after a text has been used its
    UTF-8 byte count is added to ``n_bytes`` and reported to ``progress``."""

    def __init__(self, texts: Iterable[str], progress: Callable[[int], None] | None):
        self._texts = texts
        self._progress = progress
        self.n_bytes = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            if not isinstance(text, str):
                raise TypeError(f"Lexicon.build expects str texts, got {type(text).__name__}")
            yield text
            n = len(text.encode("utf-8", "surrogatepass"))
            self.n_bytes += n
            if self._progress:
                self._progress(n)


def add_pieces(table: UnitTable, counts: Counter, o: BuildOptions, prefix: str = "") -> int:
    """Learn byte-level pieces over the counted strings (``prefix`` + each, weights capped),
    then return how many word-level units fit before the phrase share of what is left."""
    n_merges = max(0, min(o.piece_merges, o.vocab_size - len(table)))
    table.add_pieces(
        (prefix + t for t, c in counts.items() for _ in range(min(c, PIECE_WEIGHT_CAP))), n_merges
    )
    budget = o.vocab_size - len(table)
    return budget - int(budget * o.phrase_share)


def learn_phrase_rounds(table: UnitTable, docs: list, width: dict[int, int], o: BuildOptions,
                        new_unit: Callable[[int, int, int], int]) -> list[MergeTable]:
    """Multi-word merge rounds over ``docs`` with the rest of the vocabulary; ``width`` holds
    the units that may join (and how many words each spans)."""
    shares = round_budgets(o.vocab_size - len(table), o.rounds)
    tables, _ = learn_rounds(docs, shares, width.__contains__, width.__getitem__,
                             o.max_n, o.phrase_min_count, new_unit)
    return tables


def round_budgets(total: int, rounds: int) -> list[int]:
    """Split the multi-word budget over rounds, most to the first (pairs of words)."""
    if rounds <= 0 or total <= 0:
        return []
    weights = [0.5 ** r for r in range(rounds)]
    s = sum(weights)
    out = [int(total * w / s) for w in weights]
    out[0] += total - sum(out)
    return out


def gloss_unit(u: Unit, text_kinds: tuple[str, ...]) -> str:
    """A unit shown as text: its ``text`` for ``text_kinds``, else its bytes as UTF-8, or
    ``<0xNN>`` per byte when they are not valid UTF-8 on their own."""
    if u.kind in text_kinds:
        return u.text
    try:
        return u.data.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"<0x{b:02X}>" for b in u.data)
