"""The embedded bilingual demo corpus (see ATTRIBUTION.md for sources and licences).

from dualmind.sources.demo import load_demo_documents, load_demo_qa
docs = load_demo_documents()            # list[DemoDocument(id, lang, text, source)]
docs = load_demo_documents(langs=("ru",))
pairs = load_demo_qa()                   # list[DemoQA(id, lang, input, target, source)]
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
DOCUMENT_FILES = {"en": "en.jsonl.gz", "ru": "ru.jsonl.gz"}
QA_FILE = "qa.jsonl.gz"


@dataclass(frozen=True)
class DemoDocument:
    id: str
    lang: str
    text: str
    source: str


@dataclass(frozen=True)
class DemoQA:
    id: str
    lang: str
    input: str
    target: str
    source: str


def demo_files() -> list[Path]:
    """The demo's data files, documents first (what `corpus build --demo` reads)."""
    return [DEMO_DIR / DOCUMENT_FILES[lang] for lang in sorted(DOCUMENT_FILES)] + [
        DEMO_DIR / QA_FILE
    ]


def _read(name: str) -> Iterable[dict]:
    path = DEMO_DIR / name
    if not path.exists():
        raise FileNotFoundError(
            f"demo corpus file {path} is missing; rebuild it with scripts/build_demo_corpus.py"
        )
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def load_demo_documents(
    langs: Iterable[str] = ("en", "ru"), limit: int | None = None
) -> list[DemoDocument]:
    """Documents of the demo corpus, English first. `limit` caps documents per language."""
    docs: list[DemoDocument] = []
    for lang in langs:
        if lang not in DOCUMENT_FILES:
            raise ValueError(
                f"the demo corpus has no language {lang!r}; it has {sorted(DOCUMENT_FILES)}"
            )
        for i, r in enumerate(_read(DOCUMENT_FILES[lang])):
            if limit is not None and i >= limit:
                break
            docs.append(DemoDocument(r["id"], r["lang"], r["text"], r["source"]))
    return docs


def load_demo_texts(langs: Iterable[str] = ("en", "ru"), limit: int | None = None) -> list[str]:
    """Just the document texts — what `Lexicon.build` takes."""
    return [d.text for d in load_demo_documents(langs, limit)]


def load_demo_qa(langs: Iterable[str] = ("en", "ru")) -> list[DemoQA]:
    wanted = set(langs)
    return [
        DemoQA(r["id"], r["lang"], r["input"], r["target"], r["source"])
        for r in _read(QA_FILE)
        if r["lang"] in wanted
    ]
