"""One symbol per unit: unit id <-> one private-use character.

Ids fill the BMP private-use area first (6,400 code points, U+E000..U+F8FF), then the
supplementary private-use planes 15 and 16 (65,534 each; U+xFFFE/U+xFFFF are
non-characters and are skipped). A hyperphrase is therefore a plain Python ``str`` with
exactly one character per unit, whatever the vocabulary size up to ``MAX_UNITS``.
"""

from __future__ import annotations

_RANGES = (
    (0xE000, 0xF8FF + 1),
    (0xF0000, 0xFFFFD + 1),
    (0x100000, 0x10FFFD + 1),
)
MAX_UNITS = sum(hi - lo for lo, hi in _RANGES)


def symbol_of(unit_id: int) -> str:
    """The character that stands for ``unit_id``."""
    if unit_id < 0:
        raise ValueError(f"unit id {unit_id} is negative")
    rest = unit_id
    for lo, hi in _RANGES:
        if rest < hi - lo:
            return chr(lo + rest)
        rest -= hi - lo
    raise ValueError(f"unit id {unit_id} exceeds the {MAX_UNITS} private-use symbols")


def id_of(symbol: str) -> int:
    """Inverse of :func:`symbol_of`; raises ``ValueError`` for a non-symbol character."""
    cp = ord(symbol)
    base = 0
    for lo, hi in _RANGES:
        if lo <= cp < hi:
            return base + cp - lo
        base += hi - lo
    raise ValueError(f"character U+{cp:04X} is not a hyperphrase symbol (private-use area)")


def symbol_table(n: int) -> list[str]:
    """Symbols of ids ``0..n-1`` (index with an id to get its character)."""
    if n > MAX_UNITS:
        raise ValueError(f"vocabulary of {n} units exceeds the {MAX_UNITS} private-use symbols")
    return [symbol_of(i) for i in range(n)]


def codepoint_label(unit_id: int) -> str:
    """``U+E004``-style label used in the human-readable unit table."""
    return f"U+{ord(symbol_of(unit_id)):04X}"
