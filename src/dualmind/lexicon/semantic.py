"""The ``semantic`` level: lemmas of content words and multi-word concepts.

A word is lower-cased, assigned a language by its script, dropped if it is a function
word (stopword, as surface or as lemma), otherwise lemmatised ("ночью" -> "ночь",
"went" -> "go"). Frequent lemmas are units; a rare lemma falls back to byte-level pieces
of the lemma (" " + lemma, so the first piece marks the word start) rather than vanish.
Concepts are merge rounds over the lemma stream ("new york", "точка зрения").
Punctuation, symbols and whitespace are dropped. ``decode`` gives a '·'-joined gloss.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from itertools import chain

import numpy as np

from .chunks import ChunkCache
from .lemmatize import lemmatize
from .merges import MergeRounds, MergeTable
from .pieces import PieceModel
from .pretokenize import WORD, WORD_SPLIT
from .script import LANG_SCRIPT, UND, lang_of_word
from .training import BuildOptions, TextFeed, add_pieces, gloss_unit, learn_phrase_rounds
from .units import Unit
from .vocab import UnitTable, piece_vocab_of

SEP = "·"

# English clitics: "don't" -> do + not; other clitics ('s, 'll, 're, ...) are function words.
_NEG_BASE = {"ca": "can", "wo": "will", "sha": "shall", "ai": "be"}


class WordAnalyzer:
    """Surface word -> content lemmas, memoised per (word, preferred language)."""

    def __init__(self, langs: tuple[str, ...], stopwords: dict[str, frozenset[str]]):
        self.langs = langs
        self.stopwords = stopwords
        self._memo: dict[tuple[str, str | None], tuple[tuple[str, str], ...]] = {}
        self.und_forms = 0  # distinct words of no configured language seen

    def __call__(self, word: str, prefer: str | None = None) -> tuple[tuple[str, str], ...]:
        key = (word, prefer)
        out = self._memo.get(key)
        if out is None:
            out = self._memo[key] = self._analyze(word, prefer)
        return out

    def _analyze(self, word: str, prefer: str | None) -> tuple[tuple[str, str], ...]:
        if word[0].isdigit():
            return ((word, "-"),)
        lang = lang_of_word(word, self.langs, prefer)
        low = word.lower()
        if lang == UND:
            # Documented fallback: no lemmatiser, no stopwords; counted.
            self.und_forms += 1
            return ((low, UND),)
        stop = self.stopwords.get(lang, frozenset())
        parts = [low]
        low = low.replace("’", "'")
        if lang == "en" and "'" in low:
            base, _, clitic = low.partition("'")
            if clitic == "t" and base.endswith("n"):
                base = base[:-1]
                parts = [_NEG_BASE.get(base, base), "not"]
            else:
                parts = [base]
        out = []
        for p in parts:
            if not p or p in stop:
                continue
            lemma = "_".join(lemmatize(p, lang).split())  # never whitespace inside a lemma
            if lemma and lemma not in stop:
                out.append((lemma, lang))
        return tuple(out)


class SemanticCodec:
    def __init__(self, units: list[Unit], rounds: list[MergeTable],
                 langs: tuple[str, ...], stopwords: dict[str, frozenset[str]],
                 surfaces: dict[str, tuple[str, ...]] | None = None):
        self.units = units
        self.rounds = rounds
        self._merge = MergeRounds(rounds, len(units))
        self.langs = langs
        self.analyzer = WordAnalyzer(langs, stopwords)
        # The build's surface-form table: every word of the training corpus already
        # analysed, so encoding never calls a lemmatiser for them (fast, and the same
        # lemmas on any machine whatever lemmatiser version is installed).
        for word, lemmas in (surfaces or {}).items():
            self.analyzer._memo[(word, None)] = tuple((lemma, "-") for lemma in lemmas)
        vocab, merges = piece_vocab_of(units)
        self.pieces = PieceModel(vocab, merges)
        self.lemma_ids = {u.text: u.id for u in units if u.kind == "lemma"}
        self._lemma_memo: dict[str, tuple[int, ...]] = {}
        self._caches: dict[str | None, ChunkCache] = {}
        self.fallback_forms = 0
        self._glyph = [self._make_glyph(u) for u in units]
        self._word_caches: dict[str | None, ChunkCache] = {}
        if surfaces:
            self._prefill(surfaces)

    def _prefill(self, surfaces: dict[str, tuple[str, ...]]) -> None:
        """Word -> ids for every training word form, computed once at load (rare lemmas
        split into pieces in one compiled batch), so even a first pass over text made of
        known words runs on dict hits."""
        rare = sorted({lem for lemmas in surfaces.values() for lem in lemmas
                       if lem not in self.lemma_ids})
        pieces = self.pieces.split_batch([" " + x for x in rare])
        for lemma, ids in zip(rare, pieces, strict=True):
            self._lemma_memo[lemma] = tuple(ids)
        lemma_ids = self.lemma_ids
        memo = self._lemma_memo
        words = self._word_cache(None)
        for word, lemmas in surfaces.items():
            if len(lemmas) == 1:
                uid = lemma_ids.get(lemmas[0])
                words[word] = (uid,) if uid is not None else memo[lemmas[0]]
            else:
                words[word] = tuple(chain.from_iterable(map(self.lemma_to_ids, lemmas)))

    def _word_cache(self, prefer: str | None) -> ChunkCache:
        c = self._word_caches.get(prefer)
        if c is None:
            c = self._word_caches[prefer] = ChunkCache(lambda w: self.word_to_ids(w, prefer))
        return c

    # -- encoding -------------------------------------------------------------------
    def lemma_to_ids(self, lemma: str) -> tuple[int, ...]:
        out = self._lemma_memo.get(lemma)
        if out is None:
            uid = self.lemma_ids.get(lemma)
            if uid is not None:
                out = (uid,)
            else:
                self.fallback_forms += 1
                out = tuple(self.pieces.split(" " + lemma))
            self._lemma_memo[lemma] = out
        return out

    def word_to_ids(self, word: str, prefer: str | None = None) -> tuple[int, ...]:
        return tuple(chain.from_iterable(
            self.lemma_to_ids(lemma) for lemma, _ in self.analyzer(word, prefer)))

    def _norm_prefer(self, prefer: str | None) -> str | None:
        """A preferred language only changes anything when another configured language
        shares its script; otherwise it is the same as None (and shares its caches,
        including the training surface forms)."""
        if prefer is None:
            return None
        script = LANG_SCRIPT.get(prefer)
        if script is None or sum(LANG_SCRIPT.get(x) == script for x in self.langs) <= 1:
            return None
        return prefer

    def _cache(self, prefer: str | None) -> ChunkCache:
        """Chunk -> ids cache (one per preferred language), backed by a word -> ids cache:
        a chunk seen for the first time ("night," after "night") costs one regex call and
        dict hits, no lemmatiser."""
        c = self._caches.get(prefer)
        if c is None:
            get_word = self._word_cache(prefer).__getitem__
            find = WORD.findall

            def compute(chunk: str) -> tuple[int, ...]:
                ws = find(chunk)
                if len(ws) == 1:
                    return get_word(ws[0])
                return tuple(chain.from_iterable(map(get_word, ws)))

            c = self._caches[prefer] = ChunkCache(compute)
        return c

    def base_ids(self, text: str, prefer: str | None = None) -> list[int]:
        cache = self._cache(self._norm_prefer(prefer))
        return list(chain.from_iterable(map(cache.__getitem__, text.split())))

    def encode(self, text: str, prefer: str | None = None) -> list[int]:
        return self._merge(self.base_ids(text, prefer))

    def encode_batch(self, texts: list[str], prefer: str | None = None) -> list[list[int]]:
        return self._merge.batch([self.base_ids(t, prefer) for t in texts])

    def encode_with_spans(self, text: str, prefer: str | None = None):
        prefer = self._norm_prefer(prefer)
        # Word spans and word ids through C-level map() calls; the per-unit spans are
        # then expanded with numpy (a word may give 0 units: a function word, or several:
        # a clitic split or the pieces of a rare lemma, which share its span in order).
        # split() with a capturing group alternates gap, word, gap, word, ..., gap: the
        # cumulative lengths give every word's offsets without a Match object per word.
        parts = WORD_SPLIT.split(text)
        words = parts[1::2]
        vals = list(map(self._word_cache(prefer).__getitem__, words))
        ids = list(chain.from_iterable(vals))
        if not ids:
            return [], []
        bounds = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)))
        lens = np.fromiter(map(len, vals), dtype=np.int64, count=len(vals))
        s = np.repeat(bounds[0:-1:2], lens)  # a word starts where the gap before it ends
        width = np.repeat(bounds[1::2], lens) - s
        n = np.repeat(lens, lens)
        k = np.arange(len(ids)) - np.repeat(np.cumsum(lens) - lens, lens)
        starts = s + width * k // n
        ends = s + width * (k + 1) // n
        return self._merge.apply_with_spans(ids, starts.tolist(), ends.tolist())

    # -- decoding -------------------------------------------------------------------
    def _make_glyph(self, u: Unit) -> tuple[bool, bytes]:
        """(starts a new word?, bytes to print) for one unit."""
        if u.kind == "special":
            return False, b""
        if u.kind in ("lemma", "concept"):
            return True, u.data
        if u.data.startswith(b" "):
            return True, u.data[1:]
        return False, u.data

    def decode(self, ids: Iterable[int]) -> str:
        out = bytearray()
        sep = SEP.encode()
        for uid in ids:
            new_word, data = self._glyph[uid]
            if new_word and out:
                out += sep
            out += data
        return out.decode("utf-8", "replace")

    def gloss(self, uid: int) -> str:
        return gloss_unit(self.units[uid], ("special", "lemma", "concept"))


def build_semantic(
    texts: Iterable[str],
    o: BuildOptions,
    langs: tuple[str, ...],
    stopwords: dict[str, frozenset[str]],
    progress: Callable[[int], None] | None,
) -> tuple[list[Unit], list[MergeTable], dict]:
    analyzer = WordAnalyzer(langs, stopwords)
    chunk_memo: dict[str, tuple[tuple[str, str], ...]] = {}
    docs_lemmas: list[list[str]] = []
    counts: Counter = Counter()
    lang_of: dict[str, str] = {}
    feed = TextFeed(texts, progress)
    for text in feed:
        doc: list[str] = []
        for chunk in text.split():
            lem = chunk_memo.get(chunk)
            if lem is None:
                lem = chunk_memo[chunk] = tuple(
                    chain.from_iterable(analyzer(w) for w in WORD.findall(chunk)))
            for lemma, lang in lem:
                doc.append(lemma)
                if lemma not in lang_of:
                    lang_of[lemma] = lang
        counts.update(doc)
        docs_lemmas.append(doc)

    table = UnitTable()
    word_budget = add_pieces(table, counts, o, prefix=" ")
    lemmas = 0
    for lemma, c in counts.most_common():
        if lemmas >= word_budget or c < o.min_count:
            break
        table.add("lemma", lemma.encode("utf-8", "surrogatepass"), count=c,
                  lang=lang_of[lemma], unique=False)
        lemmas += 1
    codec = SemanticCodec(table.units, [], langs, stopwords)
    docs = [list(chain.from_iterable(map(codec.lemma_to_ids, d))) for d in docs_lemmas]
    del docs_lemmas
    width = {u.id: 1 for u in table.units if u.kind == "lemma"}

    def new_unit(a: int, b: int, c: int) -> int:
        ua, ub = table.units[a], table.units[b]
        lang = ua.lang if ua.lang == ub.lang else "-"
        uid = table.add("concept", ua.data + b" " + ub.data, count=c, lang=lang,
                        parts=(a, b), unique=False)
        width[uid] = width[a] + width[b]
        return uid

    tables = learn_phrase_rounds(table, docs, width, o, new_unit)
    surfaces = {word: tuple(lemma for lemma, _ in out)
                for (word, prefer), out in analyzer._memo.items() if prefer is None}
    stats = {"train_bytes": feed.n_bytes, "train_docs": len(docs), "distinct_lemmas": len(counts),
             "distinct_surfaces": len(surfaces), "und_forms": analyzer.und_forms,
             "lemmas": lemmas, "pieces": sum(u.kind == "piece" for u in table.units),
             "concepts": sum(u.kind == "concept" for u in table.units)}
    return table.units, tables, stats, surfaces
