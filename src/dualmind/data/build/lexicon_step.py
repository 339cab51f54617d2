"""The lexicon as a build sees it: loaded from a folder (or saved to one, so that worker
processes can load it), checked against the requested level, and its languages."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from dualmind.data.build.options import WORK, CorpusError


def lexicon_class():
    from dualmind.lexicon.lexicon import Lexicon

    return Lexicon


def resolve_lexicon(lexicon: Any, out_dir: Path) -> tuple[Any, Path]:
    """(lexicon object, directory workers load it from). An object is saved once under .build/."""
    if isinstance(lexicon, (str, os.PathLike)):
        path = Path(lexicon).resolve()
        if not path.is_dir():
            raise CorpusError(
                f"lexicon {path}: no such folder (build one with `dualmind lexicon build`)"
            )
        return lexicon_class().load(path), path
    path = (out_dir / WORK / "lexicon").resolve()
    marker = path / ".fingerprint"
    if not (marker.is_file() and marker.read_text() == lexicon.fingerprint):
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lexicon.save(path)
        marker.write_text(lexicon.fingerprint)
    return lexicon, path


def lexicon_langs(lex: Any) -> tuple[str, ...]:
    langs = getattr(lex, "langs", None) or ("en", "ru")
    return tuple(langs)


def check_level(lex: Any, level: str | None, where: Path) -> None:
    if level is not None and lex.level != level:
        raise CorpusError(
            f"lexicon {where} is built for level {lex.level!r}, but level {level!r} was "
            f"requested; build a {level!r} lexicon (`dualmind lexicon build --level {level}`) "
            f"or drop --level"
        )


def detect(text: str) -> str:
    from dualmind.lexicon.script import detect_language

    return detect_language(text[:4000])
