"""Shared pieces of the training tests (no tests here): a tiny real corpus, built once per
process with the real lexicon and corpus builder, and a tiny model shape."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

# A model small enough that a training step takes milliseconds; vocab covers the tiny lexicon.
TINY_LEXICON_VOCAB = 1024
TINY_MODEL = [
    "model.vocab_size=1024",
    "model.dim=64",
    "model.n_layers=2",
    "model.n_heads=4",
    "model.n_kv_heads=2",
    "model.ffn_dim=128",
    "model.max_seq_len=256",
]
TINY_DATA = ["data.seq_len=64", "data.batch_size=4", "data.val_max_batches=2"]
QUIET = ["trainer.enable_progress_bar=false", "trainer.loggers=[]"]


@functools.cache
def tiny_corpus() -> Path:
    """A corpus of 25 English + 25 Russian demo documents with a 1024-unit lexicon (~5 s)."""
    from dualmind.data.build.corpus import build_corpus
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.sources.demo import load_demo_documents

    root = Path(tempfile.mkdtemp(prefix="dualmind-train-test-"))
    atexit.register(shutil.rmtree, root, True)
    docs = load_demo_documents(limit=25)
    src = root / "docs.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d.text, "lang": d.lang}, ensure_ascii=False) + "\n")
    lex = Lexicon.build([d.text for d in docs], level="lossless", vocab_size=TINY_LEXICON_VOCAB)
    lex.save(root / "lexicon")
    build_corpus(
        [src],
        root / "lexicon",
        root / "corpus",
        workers=1,
        progress=False,
        num_shards=1,
        text_vocab_size=512,
        val_fraction=0.2,
    )
    return root / "corpus"


def tiny_overrides(run_dir: Path, *extra: str) -> list[str]:
    return [
        "recipe=core_mini",
        f"data.dir={tiny_corpus()}",
        f"run_dir={run_dir}",
        *TINY_MODEL,
        *TINY_DATA,
        *QUIET,
        *extra,
    ]
