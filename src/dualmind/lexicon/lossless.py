"""The ``lossless`` level: words and multi-word units, exact round trip.

Units: reserved ids, the 256 bytes, byte-level BPE pieces, frequent pre-tokens ("words",
with their leading space: " night", ",", ".\\n"), and phrases made by merge rounds over
the word stream (" of the", ", and", " I am"). A pre-token outside the vocabulary splits
into pieces, and every byte is a unit, so every string encodes and
``decode(encode(text)) == text`` byte for byte.

Fast path: the base encoding (pre-tokenise, look the whole pre-token up, else BPE into
pieces) runs inside tiktoken's compiled ``CoreBPE`` with *our* table: ranks are unit ids
(bytes < pieces in merge order < words), so a known word is one lookup and an unknown
one is byte-pair merged into our pieces. Only the multi-word merge rounds run in Python,
and they touch the hits only. Text holding lone surrogates (not valid Unicode, but a
legal Python ``str``) takes a slower path that keeps them as raw bytes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from .merges import MergeRounds, MergeTable
from .pretokenize import LOSSLESS, LOSSLESS_PATTERN
from .training import BuildOptions, TextFeed, add_pieces, gloss_unit, learn_phrase_rounds
from .units import Unit
from .vocab import BYTE_BASE, UnitTable

_SURROGATES = re.compile("([\ud800-\udfff]+)")


def pretokens(text: str) -> list[str]:
    return LOSSLESS.findall(text)


def _core_encoder(units: list[Unit]):
    import tiktoken

    ranks = {u.data: u.id for u in units if u.kind in ("byte", "piece", "word")}
    return tiktoken.Encoding(f"dualmind-lossless-{len(units)}", pat_str=LOSSLESS_PATTERN,
                             mergeable_ranks=ranks, special_tokens={})


class LosslessCodec:
    def __init__(self, units: list[Unit], rounds: list[MergeTable]):
        self.units = units
        self.rounds = rounds
        self._merge = MergeRounds(rounds, len(units))
        self._core = _core_encoder(units)
        self.unit_bytes = [b"" if u.kind == "special" else u.data for u in units]
        self._byte_len = np.array([len(b) for b in self.unit_bytes], dtype=np.int64)

    def base_ids(self, text: str) -> list[int]:
        """Ids before the multi-word merge rounds."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates cannot enter the compiled encoder
            return self._base_ids_with_surrogates(text)
        return self._core.encode_ordinary(text)

    def base_array(self, text: str) -> np.ndarray:
        # encode_ordinary + asarray: tiktoken's encode_to_numpy takes its special-token
        # path, measured ~1.8x slower with our (empty) special-token set.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates cannot enter the compiled encoder
            return np.asarray(self._base_ids_with_surrogates(text), dtype=np.int64)
        return np.asarray(self._core.encode_ordinary(text), dtype=np.int64)

    def _base_ids_with_surrogates(self, text: str) -> list[int]:
        ids: list[int] = []
        for k, part in enumerate(_SURROGATES.split(text)):
            if k % 2:  # a run of lone surrogates: their 'surrogatepass' bytes
                ids.extend(BYTE_BASE + b for b in part.encode("utf-8", "surrogatepass"))
            elif part:
                ids.extend(self._core.encode_ordinary(part))
        return ids

    def encode(self, text: str) -> list[int]:
        return self._merge.apply_array(self.base_array(text))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._merge.batch_arrays([self.base_array(t) for t in texts])

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
        return list(zip(starts, ends, strict=True))

    def decode(self, ids: Iterable[int]) -> str:
        data = b"".join(map(self.unit_bytes.__getitem__, ids))
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:  # ids that did not come from encode()
            return data.decode("utf-8", "replace")

    def gloss(self, uid: int) -> str:
        return gloss_unit(self.units[uid], ("special",))


def build_lossless(
    texts: Iterable[str],
    o: BuildOptions,
    progress: Callable[[int], None] | None,
) -> tuple[list[Unit], list[MergeTable], dict]:
    docs_text: list[str] = []
    counts: Counter = Counter()
    feed = TextFeed(texts, progress)
    for text in feed:
        counts.update(pretokens(text))
        docs_text.append(text)

    table = UnitTable()
    word_budget = add_pieces(table, counts, o)
    words = 0
    for tok, c in counts.most_common():
        if words >= word_budget or c < o.min_count:
            break
        data = tok.encode("utf-8", "surrogatepass")
        if data in table.by_data:
            continue
        table.add("word", data, count=c)
        words += 1
    # Only units that stand for a whole pre-token may join phrases (not word fragments).
    whole = {table.by_data[t.encode("utf-8", "surrogatepass")] for t in counts
             if t.encode("utf-8", "surrogatepass") in table.by_data}
    codec = LosslessCodec(table.units, [])
    docs = [codec.base_ids(t) for t in docs_text]
    del docs_text
    width = {uid: 1 for uid in whole}

    def new_unit(a: int, b: int, c: int) -> int:
        uid = table.add("phrase", table.units[a].data + table.units[b].data,
                        count=c, parts=(a, b), unique=False)
        width[uid] = width[a] + width[b]
        return uid

    tables = learn_phrase_rounds(table, docs, width, o, new_unit)
    stats = {"train_bytes": feed.n_bytes, "train_docs": len(docs),
             "distinct_pretokens": len(counts), "words": words,
             "pieces": sum(u.kind == "piece" for u in table.units),
             "phrases": sum(u.kind == "phrase" for u in table.units)}
    return table.units, tables, stats, None

