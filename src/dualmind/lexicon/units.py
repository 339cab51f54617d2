"""The unit table: one row per unit, written as a human-readable TSV.

Columns: ``id  symbol  kind  form  count  lang  parts``.
``form`` is a JSON string (so tabs, newlines and quotes stay readable and exact); a unit
whose bytes are not valid UTF-8 on their own (a byte, or a piece ending inside a
multi-byte character) is written ``hex:e280``. ``parts`` is ``left+right`` for units made
by a merge (pieces, phrases, concepts) and ``-`` otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .symbols import codepoint_label

KINDS = ("special", "byte", "piece", "word", "phrase", "lemma", "concept")
HEADER = ("id", "symbol", "kind", "form", "count", "lang", "parts")


class LexiconError(ValueError):
    """A lexicon directory or argument is invalid; the message names file and key/line."""


@dataclass(frozen=True)
class Unit:
    id: int
    kind: str
    data: bytes  # exact bytes of the unit's form (UTF-8 text for words, lemmas, ...)
    count: int = 0
    lang: str = "-"
    parts: tuple[int, int] | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _form_field(data: bytes) -> str:
    try:
        return json.dumps(data.decode("utf-8"), ensure_ascii=False)
    except UnicodeDecodeError:
        return "hex:" + data.hex()


def _parse_form(field: str, where: str) -> bytes:
    if field.startswith("hex:"):
        try:
            return bytes.fromhex(field[4:])
        except ValueError as e:
            raise LexiconError(f"{where}: column 'form': bad hex {field!r}") from e
    try:
        value = json.loads(field)
    except json.JSONDecodeError as e:
        raise LexiconError(f"{where}: column 'form': not a JSON string: {field[:40]!r}") from e
    if not isinstance(value, str):
        raise LexiconError(f"{where}: column 'form': expected a JSON string")
    return value.encode("utf-8", errors="surrogatepass")


def format_units(units: list[Unit]) -> str:
    lines = ["\t".join(HEADER)]
    for u in units:
        parts = f"{u.parts[0]}+{u.parts[1]}" if u.parts else "-"
        lines.append(
            f"{u.id}\t{codepoint_label(u.id)}\t{u.kind}\t{_form_field(u.data)}\t"
            f"{u.count}\t{u.lang}\t{parts}"
        )
    return "\n".join(lines) + "\n"


def parse_units(text: str, path: str) -> list[Unit]:
    lines = text.split("\n")
    if not lines or lines[0].split("\t") != list(HEADER):
        raise LexiconError(
            f"{path}:1: header must be the columns {' '.join(HEADER)} (tab-separated)")
    units: list[Unit] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        where = f"{path}:{lineno}"
        cols = line.split("\t")
        if len(cols) != len(HEADER):
            raise LexiconError(f"{where}: expected {len(HEADER)} columns, found {len(cols)}")
        uid, symbol, kind, form, count, lang, parts = cols
        try:
            uid_i, count_i = int(uid), int(count)
        except ValueError as e:
            raise LexiconError(f"{where}: columns 'id'/'count' must be integers") from e
        if uid_i != len(units):
            raise LexiconError(f"{where}: column 'id' is {uid_i}, expected {len(units)}")
        if symbol != codepoint_label(uid_i):
            raise LexiconError(
                f"{where}: column 'symbol' is {symbol}, expected {codepoint_label(uid_i)}"
            )
        if kind not in KINDS:
            raise LexiconError(f"{where}: column 'kind' is {kind!r}, expected one of {KINDS}")
        parts_t = None
        if parts != "-":
            try:
                a, b = (int(x) for x in parts.split("+"))
            except ValueError as e:
                raise LexiconError(f"{where}: column 'parts' must be 'left+right' or '-'") from e
            if not (0 <= a < uid_i and 0 <= b < uid_i):
                raise LexiconError(f"{where}: column 'parts' refers to later unit ids {parts}")
            parts_t = (a, b)
        units.append(Unit(uid_i, kind, _parse_form(form, where), count_i, lang, parts_t))
    return units
