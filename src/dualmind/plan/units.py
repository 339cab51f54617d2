"""Sizes and counts as people type them: ``1TB``, ``500GiB``, ``15T`` tokens.

Byte units: KB/MB/GB/TB/PB are decimal (powers of 1000, as disks and datasets are
sold and as "1 TB of text" is usually meant); KiB/MiB/GiB/TiB/PiB are binary
(powers of 1024). A bare number is bytes. Case of the prefix letter does not matter
(``1tb`` == ``1TB``) but the ``i`` of the binary units is required to get 1024s.
"""

from __future__ import annotations

import math
import re

_DECIMAL = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15}
_BINARY = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "PIB": 2**50}
_COUNT = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12, "P": 10**15}

_NUMBER = r"(?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)"
_SIZE_RE = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>[A-Za-z]*)\s*$")


class SizeError(ValueError):
    """A size or count string that cannot be read; the message says what was expected."""


def parse_bytes(text: str) -> int:
    """``"1TB"`` -> 10**12, ``"1TiB"`` -> 2**40, ``"750GB"`` -> 7.5e11. Must be > 0."""
    match = _SIZE_RE.match(str(text))
    if not match:
        raise SizeError(
            f"cannot read size {text!r}: expected a number and a unit such as 1TB, 500GB, 2TiB"
        )
    unit = match["unit"].upper()
    factor = _DECIMAL.get(unit) or _BINARY.get(unit)
    if factor is None:
        units = ", ".join([u for u in _DECIMAL if u] + ["KiB", "MiB", "GiB", "TiB", "PiB"])
        raise SizeError(f"unknown unit {match['unit']!r} in {text!r}; use one of {units}")
    value = float(match["num"]) * factor
    if not math.isfinite(value) or value <= 0:
        raise SizeError(f"size {text!r} must be positive")
    return int(round(value))


def parse_count(text: str) -> float:
    """``"15T"`` -> 1.5e13, ``"70B"`` -> 7e10, ``"1e6"`` -> 1e6. Must be > 0."""
    match = _SIZE_RE.match(str(text))
    if not match or match["unit"].upper() not in _COUNT:
        raise SizeError(f"cannot read count {text!r}: expected e.g. 15T, 70B, 400M, 1e6")
    value = float(match["num"]) * _COUNT[match["unit"].upper()]
    if not math.isfinite(value) or value <= 0:
        raise SizeError(f"count {text!r} must be positive")
    return value


def human_bytes(n: float) -> str:
    """Decimal units, matching how sizes are read: 1.0e12 -> '1.00 TB'."""
    n = float(f"{n:.6g}")  # 999999999999.99 (a float round trip) is 1.00 TB, not 1000.00 GB
    for unit, factor in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n:.0f} B"


def human_gib(n: float) -> str:
    """Memory is quoted in binary GiB, as GPU memory and allocators report it."""
    return f"{n / 2**30:.1f} GiB"


def human_count(n: float) -> str:
    """1.4e12 -> '1.40T', 7.06e10 -> '70.6B'."""
    for unit, factor in (("Q", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= factor:
            value = n / factor
            return f"{value:.3g}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return f"{n:.3g}"
