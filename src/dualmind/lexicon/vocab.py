"""A growing unit table used while building a lexicon (reserved ids, bytes, pieces)."""

from __future__ import annotations

from .pieces import train_merges
from .units import Unit

RESERVED = ("<pad>", "<bos>", "<eos>", "<unk>")
BYTE_BASE = len(RESERVED)  # byte b is unit BYTE_BASE + b


class UnitTable:
    def __init__(self) -> None:
        self.units: list[Unit] = []
        self.by_data: dict[bytes, int] = {}
        for name in RESERVED:
            self.units.append(Unit(len(self.units), "special", name.encode()))
        for b in range(256):
            self.add("byte", bytes([b]))

    def __len__(self) -> int:
        return len(self.units)

    def add(self, kind: str, data: bytes, count: int = 0, lang: str = "-",
            parts: tuple[int, int] | None = None, unique: bool = True) -> int:
        """Append a unit and return its id (``unique``: its bytes name it in ``by_data``)."""
        uid = len(self.units)
        self.units.append(Unit(uid, kind, data, count, lang, parts))
        if unique:
            self.by_data[data] = uid
        return uid

    def add_pieces(self, words, n_merges: int) -> int:
        """Train byte-level BPE merges on ``words`` and add each merge as a piece unit."""
        added = 0
        for a, b in train_merges(words, n_merges):
            data = a + b
            if data in self.by_data:
                continue
            self.add("piece", data, parts=(self.by_data[a], self.by_data[b]))
            added += 1
        return added


def piece_vocab_of(units: list[Unit]) -> tuple[dict[bytes, int], list[tuple[bytes, bytes]]]:
    """Vocabulary (bytes and pieces) and ordered merges for :class:`~.pieces.PieceModel`."""
    vocab = {u.data: u.id for u in units if u.kind in ("byte", "piece")}
    merges = [(units[u.parts[0]].data, units[u.parts[1]].data)
              for u in units if u.kind == "piece"]
    return vocab, merges
