"""Shared helpers for the corpus/shard tests (no tests here).

Lexicons are built once per test process (a few seconds for `semantic`) and cached on disk
in a temporary folder, so every test module can ask for one cheaply.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dualmind.lexicon.lexicon import Lexicon
from dualmind.sources.demo import load_demo_documents

_ROOT = Path(tempfile.mkdtemp(prefix="dualmind-corpus-tests-"))
# the cache lives as long as the test process; each run left one folder in /tmp before
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@functools.cache
def small_documents(per_lang: int = 6) -> tuple:
    return tuple(load_demo_documents(limit=per_lang))


@functools.cache
def small_lexicon(level: str = "lossless") -> Path:
    """A lexicon folder built from a few demo documents of each language."""
    path = _ROOT / f"lexicon-{level}"
    lex = Lexicon.build([d.text for d in small_documents(8)], level=level, vocab_size=1500)
    lex.save(path)
    return path


def write_corpus_inputs(folder: Path, per_lang: int = 6, with_qa: bool = True) -> Path:
    """A folder with a JSONL of documents (en + ru), a plain-text file and a few QA pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = small_documents(per_lang)
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as f:
        for d in docs[1:]:
            f.write(
                json.dumps({"id": d.id, "lang": d.lang, "text": d.text}, ensure_ascii=False) + "\n"
            )
    (folder / "first.txt").write_text(docs[0].text, encoding="utf-8")
    if with_qa:
        with open(folder / "qa.jsonl", "w", encoding="utf-8") as f:
            for i, (q, a, lang) in enumerate(
                [
                    ("Who is there?", "Nay, answer me: stand, and unfold yourself.", "en"),
                    ("What is the time?", "'Tis now struck twelve.", "en"),
                    ("Как дела?", "Хорошо, а у тебя?", "ru"),
                ]
            ):
                f.write(
                    json.dumps(
                        {"id": f"qa{i}", "lang": lang, "input": q, "target": a}, ensure_ascii=False
                    )
                    + "\n"
                )
    return folder


def check_alignment(ds, records, tok, lex=None) -> int:
    """Assert the shard invariants for every record of a ShardSet; return the record count."""
    n = 0
    for sc, rec in zip(ds, records, strict=True):
        assert sc.core.dtype == np.int64 and sc.text.dtype == np.int64
        assert len(sc.core) == len(sc.core_bytes) == len(rec.hyperphrase) > 0
        assert int(sc.core_bytes.sum()) == sc.n_bytes == len(rec.text.encode("utf-8"))
        assert (sc.core_bytes >= 0).all()
        assert len(sc.span) == len(sc.text)
        if len(sc.span):
            assert sc.span.min() >= -1 and sc.span.max() < len(sc.core)
            assert (np.diff(sc.span) >= 0).all(), "spans must be monotone"
        if sc.kind == "scene":
            assert tok.decode(sc.text.tolist(), skip_special_tokens=False) == rec.text
        else:
            assert tok.decode(sc.text.tolist(), skip_special_tokens=False) == rec.target
            assert (sc.span == len(sc.core) - 1).all()
        assert sc.lang == rec.lang and sc.kind == rec.kind and sc.doc == rec.doc
        if lex is not None:
            assert lex.to_hyperphrase(sc.core.tolist()) == rec.hyperphrase
            if lex.level == "lossless":
                assert lex.decode(sc.core.tolist()) == rec.text
        n += 1
    return n
