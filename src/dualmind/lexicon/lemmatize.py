"""Lemmatisers per language, cached per surface form.

English (and any other configured language) uses simplemma. Russian asks pymorphy3, a
full morphological analyser, for every possible normal form, and breaks its ties with
simplemma's (frequency-aware) answer: pymorphy3 alone turns "спали" into "спасть",
simplemma alone keeps words it does not know unchanged. Each call is memoised: the
codec sees the same surface forms again and again.
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
        forms = list(dict.fromkeys(p.normal_form for p in _morph().parse(w)))
        if len(forms) == 1:
            return forms[0].replace("ё", "е")
        simple = _simplemma(w, lang)
        if forms and simple not in forms:
            simple = forms[0]
        return simple.replace("ё", "е")
    return _simplemma(w, lang)


def _simplemma(w: str, lang: str) -> str:
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
