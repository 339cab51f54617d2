"""Scripts and languages: which language a word or a text belongs to.

Detection is by script, which is reliable for the languages dualmind ships (English:
Latin, Russian: Cyrillic). A word in any other script (Greek, CJK, Arabic, ...) or a text
with no Latin/Cyrillic letters is ``"und"`` (undetermined): it is encoded with sub-word
pieces only (no lemmatiser, no stopwords), and the encoder counts such words in
``Lexicon.stats["und_words"]`` so the fallback is never silent.
"""

from __future__ import annotations

import re

UND = "und"

# Language -> script. Languages sharing a script would need a statistical detector;
# with en/ru the script decides alone.
LANG_SCRIPT = {"en": "latin", "ru": "cyrillic"}

_LATIN = re.compile(r"[A-Za-z\u00C0-\u024F\u1E00-\u1EFF]")
_CYRILLIC = re.compile(r"[\u0400-\u052F\u1C80-\u1C8F\u2DE0-\u2DFF\uA640-\uA69F]")


def script_of_word(word: str) -> str:
    """``latin`` / ``cyrillic`` / ``other`` judged by the word's first letter."""
    for ch in word:
        if ch.isalpha():
            o = ord(ch)
            if o < 0x250 or 0x1E00 <= o <= 0x1EFF:
                return "latin"
            if 0x400 <= o <= 0x52F or 0x1C80 <= o <= 0x1C8F or 0x2DE0 <= o <= 0x2DFF \
                    or 0xA640 <= o <= 0xA69F:
                return "cyrillic"
            return "other"
    return "other"


def lang_of_word(word: str, langs: tuple[str, ...], prefer: str | None = None) -> str:
    """Language used to lemmatise ``word``: ``prefer`` if its script matches, else the
    first configured language written in the word's script, else ``"und"``."""
    script = script_of_word(word)
    if prefer is not None and LANG_SCRIPT.get(prefer) == script:
        return prefer
    for lang in langs:
        if LANG_SCRIPT.get(lang) == script:
            return lang
    return UND


def detect_language(text: str) -> str:
    """``"en"`` or ``"ru"`` by majority of Latin vs Cyrillic letters; ``"und"`` if the
    text has neither (documented fallback: pieces only, counted)."""
    n_lat = len(_LATIN.findall(text))
    n_cyr = len(_CYRILLIC.findall(text))
    if n_lat == 0 and n_cyr == 0:
        return UND
    return "ru" if n_cyr > n_lat else "en"
