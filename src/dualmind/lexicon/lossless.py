"""The ``lossless`` level: words and multi-word units, exact round trip.

Units: reserved ids, the 256 bytes, byte-level BPE pieces, frequent pre-tokens ("words",
with their leading space: " night", ",", ".\\n"), and phrases made by merge rounds over
the word stream (" of the", ", and", " I am"). A pre-token outside the vocabulary splits
into pieces, a character outside every piece into its UTF-8 bytes, so every string
encodes and ``decode(encode(text)) == text`` byte for byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from itertools import chain, islice

import numpy as np

from .chunks import ChunkCache
from .merges import MergeTable, apply_rounds, learn_rounds
from .pieces import PIECE_WEIGHT_CAP, PieceModel
from .pretokenize import LOSSLESS
from .units import Unit
from .vocab import BYTE_BASE, UnitTable, piece_vocab_of


def pretokens(text: str) -> list[str]:
    return LOSSLESS.findall(text)


class LosslessCodec:
    def __init__(self, units: list[Unit], rounds: list[MergeTable]):
        self.units = units
        self.rounds = rounds
        vocab, merges = piece_vocab_of(units)
        self.pieces = PieceModel(vocab, merges)
        # Whole pre-token -> unit (words, and pieces/bytes that are complete UTF-8 text).
        self.token_ids: dict[str, int] = {}
        for u in units:
            if u.kind in ("byte", "piece", "word"):
                try:
                    self.token_ids[u.data.decode("utf-8")] = u.id
                except UnicodeDecodeError:
                    pass
        self.unit_bytes = [b"" if u.kind == "special" else u.data for u in units]
        self._byte_len = np.array([len(b) for b in self.unit_bytes], dtype=np.int64)
        self._first = ChunkCache(self._encode_piece_of_text)
        self._spaced = ChunkCache(lambda chunk: self._encode_piece_of_text(" " + chunk))
        self.fallback_forms = 0  # distinct pre-tokens encoded by pieces since load
        self._fallback: dict[str, tuple[int, ...]] = {}
        self._prewarm()

    def _prewarm(self) -> None:
        """Seed the chunk caches with every vocabulary word that is a chunk on its own
        (" night" -> chunk "night"), so held-out text hits from its first kilobyte."""
        for tok, uid in self.token_ids.items():
            if " " in tok[1:] or pretokens(tok) != [tok]:
                continue
            if tok.startswith(" "):
                self._spaced[tok[1:]] = (uid,)
            else:
                self._first[tok] = (uid,)

    def token_to_ids(self, tok: str) -> tuple[int, ...]:
        uid = self.token_ids.get(tok)
        if uid is not None:
            return (uid,)
        out = self._fallback.get(tok)
        if out is None:
            self.fallback_forms += 1
            try:
                out = tuple(self.pieces.split(tok))
            except Exception:  # lone surrogates cannot cross into the compiled BPE
                out = tuple(BYTE_BASE + b for b in tok.encode("utf-8", "surrogatepass"))
            if len(self._fallback) < 1 << 20:
                self._fallback[tok] = out
        return out

    def _encode_piece_of_text(self, s: str) -> tuple[int, ...]:
        return tuple(chain.from_iterable(map(self.token_to_ids, pretokens(s))))

    def base_ids(self, text: str) -> list[int]:
        """Ids before the multi-word merge rounds."""
        if not text:
            return []
        chunks = text.split(" ")
        ids = list(self._first[chunks[0]])
        if len(chunks) > 1:
            ids.extend(chain.from_iterable(map(self._spaced.__getitem__, islice(chunks, 1, None))))
        return ids

    def encode(self, text: str) -> list[int]:
        return apply_rounds(self.base_ids(text), self.rounds)

    def spans(self, text: str, ids: list[int]) -> list[tuple[int, int]]:
        """Char span of each unit; a character split across units goes to the unit
        holding its last byte, so the spans tile the text."""
        if not ids:
            return []
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        char_len = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
        char_end = np.cumsum(char_len)
        unit_end = np.cumsum(self._byte_len[np.asarray(ids, dtype=np.int64)])
        ends = np.searchsorted(char_end, unit_end, side="right").tolist()
        starts = [0] + ends[:-1]
        return list(zip(starts, ends))

    def decode(self, ids: Iterable[int]) -> str:
        data = b"".join(map(self.unit_bytes.__getitem__, ids))
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:  # ids that did not come from encode()
            return data.decode("utf-8", "replace")

    def gloss(self, uid: int) -> str:
        u = self.units[uid]
        if u.kind == "special":
            return u.text
        try:
            return u.data.decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"<0x{b:02X}>" for b in u.data)


def build_lossless(
    texts: Iterable[str],
    vocab_size: int,
    piece_merges: int,
    phrase_share: float,
    max_n: int,
    min_count: int,
    phrase_min_count: int,
    rounds: int,
    progress: Callable[[int], None] | None,
) -> tuple[list[Unit], list[MergeTable], dict]:
    docs_tokens: list[list[str]] = []
    counts: Counter = Counter()
    cache: dict[str, tuple[str, ...]] = {}
    n_bytes = 0
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"Lexicon.build expects str texts, got {type(text).__name__}")
        toks: list[str] = []
        for i, chunk in enumerate(text.split(" ")):
            key = chunk if i == 0 else " " + chunk
            t = cache.get(key)
            if t is None:
                t = cache[key] = tuple(pretokens(key))
            toks.extend(t)
        counts.update(toks)
        docs_tokens.append(toks)
        n = len(text.encode("utf-8", "surrogatepass"))
        n_bytes += n
        if progress:
            progress(n)

    table = UnitTable()
    budget = vocab_size - len(table)
    n_merges = max(0, min(piece_merges, budget))
    table.add_pieces(
        (t for t, c in counts.items() for _ in range(min(c, PIECE_WEIGHT_CAP))), n_merges
    )
    budget = vocab_size - len(table)
    phrase_budget = int(budget * phrase_share)
    word_budget = budget - phrase_budget
    words = 0
    for tok, c in counts.most_common():
        if words >= word_budget or c < min_count:
            break
        data = tok.encode("utf-8", "surrogatepass")
        if data in table.by_data:
            continue
        table.add("word", data, count=c)
        words += 1
    # Count every unit that stands for a whole pre-token: only those may join phrases.
    codec = LosslessCodec(table.units, [])
    whole = {codec.token_ids[t] for t in counts if t in codec.token_ids}
    docs = [list(chain.from_iterable(map(codec.token_to_ids, d))) for d in docs_tokens]
    del docs_tokens
    width = {uid: 1 for uid in whole}

    def new_unit(a: int, b: int, c: int) -> int:
        uid = table.add("phrase", table.units[a].data + table.units[b].data,
                        count=c, parts=(a, b), unique=False)
        width[uid] = width[a] + width[b]
        return uid

    phrase_budget = vocab_size - len(table)  # words may have left some budget unused
    shares = _round_budgets(phrase_budget, rounds)
    tables, _ = learn_rounds(docs, shares, width.__contains__, width.__getitem__,
                             max_n, phrase_min_count, new_unit)
    stats = {"train_bytes": n_bytes, "train_docs": len(docs), "distinct_pretokens": len(counts),
             "words": words, "pieces": sum(u.kind == "piece" for u in table.units),
             "phrases": sum(u.kind == "phrase" for u in table.units)}
    return table.units, tables, stats


def _round_budgets(total: int, rounds: int) -> list[int]:
    """Split the multi-word budget over rounds, most to the first (pairs of words)."""
    if rounds <= 0 or total <= 0:
        return []
    weights = [0.5 ** r for r in range(rounds)]
    s = sum(weights)
    out = [int(total * w / s) for w in weights]
    out[0] += total - sum(out)
    return out
