"""Lemmatisers per language, cached per surface form.

Russian uses pymorphy3 (a morphological analyser, ~3x faster than simplemma here and
more accurate); English and any other configured language use simplemma. Each call is
memoised: the codec sees the same surface forms again and again.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


@lru_cache(maxsize=1 << 20)
def lemmatize(word: str, lang: str) -> str:
    """Lower-case lemma of ``word`` in ``lang``; the word itself (lower-cased) if unknown."""
    w = word.lower()
    if lang == "ru":
        try:
            return _morph().parse(w)[0].normal_form.replace("ё", "е")
        except ImportError:  # pragma: no cover - pymorphy3 is a core dependency
            pass
    import simplemma

    try:
        return simplemma.lemmatize(w, lang=lang).lower()
    except ValueError:  # language not supported by simplemma
        return w


def lemmatizer_versions() -> dict[str, str]:
    """Versions recorded in a lexicon's build info (a new version may change lemmas)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("simplemma", "pymorphy3", "pymorphy3-dicts-ru"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out
