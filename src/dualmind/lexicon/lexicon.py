"""``Lexicon``: the hyperlexicon codec (text <-> unit ids <-> hyperphrase).

A lexicon directory holds:

* ``lexicon.json`` — format name and version, level, options, merge rounds, stopwords,
  the content ``fingerprint`` and (not fingerprinted) build information;
* ``units.tsv`` — one row per unit: id, symbol, kind, form, count, lang, parts;
* ``surfaces.tsv`` (semantic only) — every word form of the training corpus with the
  lemmas it stands for (empty for a function word), so encoding is reproducible and
  needs no lemmatiser call for known forms;
* ``README.txt`` — a short note for people who open the folder.

The fingerprint is the sha256 of the canonical JSON of everything in ``lexicon.json``
that changes encoding (format version, level, options, rounds, stopwords) plus the exact
bytes of ``units.tsv`` and ``surfaces.tsv``. Later artifacts (shards, checkpoints)
record it and refuse a lexicon with another one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .lossless import LosslessCodec, build_lossless
from .merges import MergeTable
from .pretokenize import PRETOKENIZER_VERSION
from .script import LANG_SCRIPT
from .semantic import SemanticCodec, build_semantic
from .stopwords import default_stopwords
from .symbols import MAX_UNITS, id_of, symbol_table
from .training import BuildOptions
from .units import LexiconError, Unit, format_units, parse_units
from .vocab import RESERVED

FORMAT = "dualmind-lexicon"
FORMAT_VERSION = 1
LEVELS = ("lossless", "semantic")
HEADER_FILE = "lexicon.json"
UNITS_FILE = "units.tsv"
SURFACES_FILE = "surfaces.tsv"
SURFACES_HEADER = "form\tlemmas"

DEFAULTS = {
    # rounds=2: a third round bought no compression on the demo corpus and cost speed.
    "lossless": dict(vocab_size=32768, piece_merges=4096, phrase_share=0.35, max_n=4,
                     min_count=2, phrase_min_count=3, rounds=2),
    "semantic": dict(vocab_size=32768, piece_merges=8192, phrase_share=0.2, max_n=3,
                     min_count=1, phrase_min_count=3, rounds=2),
}


class Lexicon:
    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    FORMAT_VERSION = FORMAT_VERSION

    def __init__(self, level: str, units: list[Unit], rounds: list[tuple[int, int]],
                 options: dict, stopwords: dict[str, list[str]] | None = None,
                 build_info: dict | None = None,
                 surfaces: dict[str, tuple[str, ...]] | None = None,
                 _files: tuple[str, str | None] | None = None):
        """Use :meth:`build` or :meth:`load`; this constructor trusts its arguments."""
        if level not in LEVELS:
            raise LexiconError(f"unknown level {level!r}; expected one of {LEVELS}")
        self.level = level
        self.units = units
        self.round_ranges = [tuple(r) for r in rounds]
        self.options = options
        self.langs = tuple(options["langs"])
        self.stopwords = {k: sorted(v) for k, v in (stopwords or {}).items()}
        self.build_info = build_info or {}
        self.surfaces = surfaces if level == "semantic" else None
        self._symbols = symbol_table(len(units))
        self._sym_to_id = {c: i for i, c in enumerate(self._symbols)}
        tables = self._round_tables()
        if level == "lossless":
            self._codec = LosslessCodec(units, tables)
        else:
            sw = {k: frozenset(v) for k, v in self.stopwords.items()}
            self._codec = SemanticCodec(units, tables, self.langs, sw, self.surfaces)
        # The exact text of units.tsv / surfaces.tsv: formatted once here, or as read by
        # load() (hashing the bytes read saves re-formatting 100k+ rows).
        self._units_text, self._surfaces_text = _files or (
            format_units(units),
            self._format_surfaces() if self.surfaces is not None else None)
        self.fingerprint = self._compute_fingerprint()

    # -- construction -----------------------------------------------------------------
    @classmethod
    def build(cls, texts: Iterable[str], level: str = "lossless", vocab_size: int | None = None,
              langs: tuple[str, ...] = ("en", "ru"), stopwords: dict | None = None,
              piece_merges: int | None = None, phrase_share: float | None = None,
              max_n: int | None = None, min_count: int | None = None,
              phrase_min_count: int | None = None, rounds: int | None = None,
              progress: Callable[[int], None] | None = None) -> Lexicon:
        """Learn a lexicon from ``texts`` (an iterable of str, read once).

        ``vocab_size`` is an upper bound including the reserved ids and the 256 byte
        units; a small corpus may fill fewer (``len(lex)`` tells). ``stopwords`` maps a
        language to a word list and replaces the built-in list for that language.
        ``progress(n_bytes)`` is called after each text.
        """
        if level not in LEVELS:
            raise LexiconError(f"level must be one of {LEVELS}, got {level!r}")
        langs = tuple(langs)
        for lang in langs:
            if lang not in LANG_SCRIPT:
                raise LexiconError(
                    f"language {lang!r} is not supported; supported: {sorted(LANG_SCRIPT)}")
        opts = dict(DEFAULTS[level])
        given = dict(vocab_size=vocab_size, piece_merges=piece_merges, phrase_share=phrase_share,
                     max_n=max_n, min_count=min_count, phrase_min_count=phrase_min_count,
                     rounds=rounds)
        opts.update({k: v for k, v in given.items() if v is not None})
        minimum = len(RESERVED) + 256
        if not minimum <= opts["vocab_size"] <= MAX_UNITS:
            raise LexiconError(
                f"vocab_size must be in [{minimum}, {MAX_UNITS}], got {opts['vocab_size']}")
        if not 0.0 <= opts["phrase_share"] < 1.0:
            raise LexiconError(f"phrase_share must be in [0, 1), got {opts['phrase_share']}")
        if opts["max_n"] < 1:
            raise LexiconError(f"max_n must be >= 1, got {opts['max_n']}")
        sw = default_stopwords(langs)
        for lang, words in (stopwords or {}).items():
            sw[lang] = frozenset(w.lower() for w in words)
        t0 = time.perf_counter()
        if level == "lossless":
            units, tables, stats, surfaces = build_lossless(texts, BuildOptions(**opts),
                                                            progress=progress)
        else:
            units, tables, stats, surfaces = build_semantic(texts, BuildOptions(**opts),
                                                            langs=langs, stopwords=sw,
                                                            progress=progress)
        ranges = []
        for t in tables:
            ids = sorted(t.values())
            ranges.append((ids[0], ids[-1] + 1))
        options = {"langs": list(langs), "pretokenizer": PRETOKENIZER_VERSION, **opts}
        from .lemmatize import lemmatizer_versions

        info = {"seconds": round(time.perf_counter() - t0, 3), **stats,
                "lemmatizers": lemmatizer_versions() if level == "semantic" else {}}
        return cls(level, units, ranges, options,
                   stopwords=sw if level == "semantic" else None, build_info=info,
                   surfaces=surfaces)

    def _round_tables(self) -> list[MergeTable]:
        tables = []
        for lo, hi in self.round_ranges:
            tables.append({self.units[i].parts: i for i in range(lo, hi)})
        return tables

    # -- identity -------------------------------------------------------------------
    def _header(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "level": self.level,
            "vocab_size": len(self.units),
            "options": self.options,
            "merge_rounds": [list(r) for r in self.round_ranges],
            "stopwords": self.stopwords,
        }

    def _compute_fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self._header(), sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
        h.update(self._units_text.encode("utf-8"))
        if self._surfaces_text is not None:
            h.update(b"\n")
            h.update(self._surfaces_text.encode("utf-8"))
        return h.hexdigest()

    def _format_surfaces(self) -> str:
        lines = [SURFACES_HEADER]
        for word, lemmas in self.surfaces.items():
            lines.append(f"{word}\t{' '.join(lemmas)}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _parse_surfaces(text: str, path: Path) -> dict[str, tuple[str, ...]]:
        lines = text.split("\n")
        if lines[0] != SURFACES_HEADER:
            raise LexiconError(f"{path}:1: header must be 'form<TAB>lemmas'")
        out: dict[str, tuple[str, ...]] = {}
        for lineno, line in enumerate(lines[1:], start=2):
            if not line:
                continue
            word, sep, lemmas = line.partition("\t")
            if not sep or not word or "\t" in lemmas:
                raise LexiconError(f"{path}:{lineno}: expected form<TAB>space-separated lemmas")
            out[word] = tuple(lemmas.split(" ")) if lemmas else ()
        return out

    @property
    def vocab_size(self) -> int:
        return len(self.units)

    def __len__(self) -> int:
        return len(self.units)

    def __repr__(self) -> str:
        return (f"Lexicon(level={self.level!r}, vocab_size={len(self)}, "
                f"fingerprint={self.fingerprint[:12]}…)")

    @property
    def stats(self) -> dict:
        """Semantic level: fallback counters since load — distinct lemmas that went to
        pieces, distinct words of no configured language (``und``). Lossless: ``{}`` (it
        loses nothing, and its fallback runs inside the compiled encoder)."""
        c = self._codec
        if self.level == "lossless":
            return {}
        return {"piece_fallback_forms": c.fallback_forms, "und_forms": c.analyzer.und_forms}

    # -- codec ----------------------------------------------------------------------
    def _prefer(self, lang: str | None) -> str | None:
        if lang is not None and lang not in self.langs and lang != "und":
            raise LexiconError(f"lang {lang!r} is not one of this lexicon's {self.langs}")
        return lang

    def encode(self, text: str, lang: str | None = None) -> list[int]:
        """Unit ids of ``text``. ``lang=None``: each word's language comes from its script
        (the lossless level checks ``lang`` but does not need it)."""
        prefer = self._prefer(lang)
        if self.level == "lossless":
            return self._codec.encode(text)
        return self._codec.encode(text, prefer)

    def encode_batch(self, texts: Iterable[str], lang: str | None = None) -> list[list[int]]:
        """Same ids as ``encode`` per text; the merge rounds run once over the whole batch."""
        texts = list(texts)
        prefer = self._prefer(lang)
        if self.level == "lossless":
            return self._codec.encode_batch(texts)
        return self._codec.encode_batch(texts, prefer)

    def encode_with_spans(self, text: str, lang: str | None = None
                          ) -> tuple[list[int], list[tuple[int, int]]]:
        prefer = self._prefer(lang)
        if self.level == "lossless":
            ids = self._codec.encode(text)
            return ids, self._codec.spans(text, ids)
        return self._codec.encode_with_spans(text, prefer)

    def to_hyperphrase(self, ids: Iterable[int]) -> str:
        try:
            return "".join(map(self._symbols.__getitem__, ids))
        except (IndexError, TypeError) as e:
            raise LexiconError(f"unit id out of range [0, {len(self)}): {e}") from e

    def from_hyperphrase(self, s: str) -> list[int]:
        try:
            return list(map(self._sym_to_id.__getitem__, s))
        except KeyError:
            for pos, ch in enumerate(s):
                if ch not in self._sym_to_id:
                    try:
                        uid = id_of(ch)
                        why = f"unit id {uid} >= vocab_size {len(self)}"
                    except ValueError:
                        why = "not a private-use symbol"
                    raise LexiconError(
                        f"hyperphrase position {pos}: character U+{ord(ch):04X} ({why})"
                    ) from None
            raise

    def decode(self, ids: Iterable[int]) -> str:
        """Lossless: the exact text. Semantic: a readable gloss joined with '·'."""
        ids = list(ids)
        n = len(self.units)
        for i in ids:
            if not 0 <= i < n:
                raise LexiconError(f"unit id {i} out of range [0, {n})")
        return self._codec.decode(ids)

    def gloss(self, uid: int) -> str:
        if not 0 <= uid < len(self.units):
            raise LexiconError(f"unit id {uid} out of range [0, {len(self.units)})")
        return self._codec.gloss(uid)

    def unit(self, uid: int) -> Unit:
        return self.units[uid]

    # -- storage --------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        header = {**self._header(), "fingerprint": self.fingerprint, "build": self.build_info}
        (d / UNITS_FILE).write_text(self._units_text, encoding="utf-8", newline="\n")
        if self._surfaces_text is not None:
            (d / SURFACES_FILE).write_text(self._surfaces_text, encoding="utf-8", newline="\n")
        elif (d / SURFACES_FILE).exists():  # left by a semantic lexicon saved here before
            (d / SURFACES_FILE).unlink()
        (d / HEADER_FILE).write_text(
            json.dumps(header, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
            encoding="utf-8")
        (d / "README.txt").write_text(_README.format(level=self.level, n=len(self),
                                                     fp=self.fingerprint), encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path, level: str | None = None,
             fingerprint: str | None = None) -> Lexicon:
        """Load a lexicon directory; ``level`` / ``fingerprint``: what the caller expects."""
        d = Path(directory)
        hpath, upath = d / HEADER_FILE, d / UNITS_FILE
        for p in (hpath, upath):
            if not p.is_file():
                raise LexiconError(f"{p}: missing (not a lexicon directory?)")
        try:
            header = json.loads(hpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LexiconError(f"{hpath}: not valid JSON: {e}") from e
        if not isinstance(header, dict):
            raise LexiconError(f"{hpath}: top level must be a JSON object")

        def key(name, typ):
            if name not in header:
                raise LexiconError(f"{hpath}: key {name!r} is missing")
            v = header[name]
            if not isinstance(v, typ):
                raise LexiconError(f"{hpath}: key {name!r} has type {type(v).__name__}")
            return v

        if key("format", str) != FORMAT:
            raise LexiconError(f"{hpath}: key 'format' is {header['format']!r}, not {FORMAT!r}")
        version = key("format_version", int)
        if version != FORMAT_VERSION:
            raise LexiconError(f"{hpath}: key 'format_version' is {version}; this dualmind "
                               f"reads version {FORMAT_VERSION}")
        got_level = key("level", str)
        if got_level not in LEVELS:
            raise LexiconError(f"{hpath}: key 'level' is {got_level!r}, not one of {LEVELS}")
        if level is not None and got_level != level:
            raise LexiconError(f"{hpath}: key 'level' is {got_level!r} but a {level!r} "
                               f"lexicon is expected")
        options = key("options", dict)
        if not isinstance(options.get("langs"), list):
            raise LexiconError(f"{hpath}: key 'options.langs' must be a list")
        rounds = key("merge_rounds", list)
        stopwords = key("stopwords", dict)
        recorded = key("fingerprint", str)
        try:
            units_text = upath.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise LexiconError(f"{upath}: not UTF-8: {e}") from e
        units = parse_units(units_text, str(upath))
        if len(units) != key("vocab_size", int):
            raise LexiconError(f"{hpath}: key 'vocab_size' is {header['vocab_size']} but "
                               f"{upath} has {len(units)} units")
        for r in rounds:
            if not (isinstance(r, list) and len(r) == 2 and 0 <= r[0] < r[1] <= len(units)
                    and all(units[i].parts for i in range(r[0], r[1]))):
                raise LexiconError(f"{hpath}: key 'merge_rounds' has a bad range {r!r}")
        surfaces = surfaces_text = None
        if got_level == "semantic":
            spath = d / SURFACES_FILE
            if not spath.is_file():
                raise LexiconError(f"{spath}: missing (a semantic lexicon needs it)")
            try:
                surfaces_text = spath.read_bytes().decode("utf-8")
            except UnicodeDecodeError as e:
                raise LexiconError(f"{spath}: not UTF-8: {e}") from e
            surfaces = cls._parse_surfaces(surfaces_text, spath)
        lex = cls(got_level, units, rounds, options, stopwords=stopwords,
                  build_info=header.get("build", {}), surfaces=surfaces,
                  _files=(units_text, surfaces_text))
        if lex.fingerprint != recorded:
            raise LexiconError(f"{hpath}: key 'fingerprint' is {recorded[:16]}… but the "
                               f"content hashes to {lex.fingerprint[:16]}… (edited or corrupt)")
        if fingerprint is not None and lex.fingerprint != fingerprint:
            raise LexiconError(f"{hpath}: key 'fingerprint' is {lex.fingerprint[:16]}…, "
                               f"expected {fingerprint[:16]}…")
        return lex


_README = """dualmind lexicon ({level}, {n} units)
fingerprint: {fp}

lexicon.json  format, version, level, options, merge rounds, stopwords, fingerprint
units.tsv     one unit per row: id, symbol (private-use code point), kind, form (JSON string
              or hex:), count in the training corpus, lang, parts (left+right for merges)
surfaces.tsv  (semantic) each training word form and the lemmas it stands for
Editing either file changes the fingerprint; Lexicon.load refuses a mismatch.
See docs/lexicon.md in the dualmind repository.
"""
