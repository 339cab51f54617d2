"""Shared pieces of the adapter tests: a tiny corpus with QA pairs and a tiny core checkpoint."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import torch

from test_train_support import QUIET, TINY_MODEL

TINY_DATA = ["data.seq_len=64", "data.batch_size=2", "data.val_max_batches=2"]


@functools.cache
def qa_corpus() -> Path:
    """10 English + 10 Russian documents and 120 QA pairs, 512-unit lexicon (~3 s)."""
    from dualmind.data.build.corpus import build_corpus
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.sources.demo import load_demo_documents, load_demo_qa

    root = Path(tempfile.mkdtemp(prefix="dualmind-adapt-test-"))
    atexit.register(shutil.rmtree, root, True)
    docs = load_demo_documents(limit=10)
    qa = load_demo_qa()[:120]
    src = root / "docs.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d.text, "lang": d.lang}, ensure_ascii=False) + "\n")
        for q in qa:
            f.write(json.dumps({"input": q.input, "target": q.target, "lang": q.lang},
                               ensure_ascii=False) + "\n")
    texts = [d.text for d in docs] + [q.input + "\n" + q.target for q in qa]
    Lexicon.build(texts, level="lossless", vocab_size=512).save(root / "lexicon")
    build_corpus([src], root / "lexicon", root / "corpus", workers=1, progress=False,
                 num_shards=1, text_vocab_size=512, val_fraction=0.2)
    return root / "corpus"


def tiny_core(seed: int = 0):
    from dualmind.config.schema import compose
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    cfg = compose(["recipe=core_mini", "data.dir=x", *TINY_MODEL])
    torch.manual_seed(seed)
    return HyperCore(CoreConfig.from_dict(dict(cfg.model)))


def write_core_checkpoint(path: Path, seed: int = 0) -> Path:
    from dualmind.train.qa_data import read_manifest

    core = tiny_core(seed)
    fingerprint = read_manifest(qa_corpus())["lexicon"]["fingerprint"]
    torch.save({"state_dict": {f"core.{k}": v for k, v in core.state_dict().items()},
                "dualmind": {"stage": "core", "lexicon_fingerprint": fingerprint,
                             "model": core.cfg.to_dict()}}, path)
    return path


def adapt_overrides(recipe: str, run_dir, ckpt, *extra: str) -> list[str]:
    return [f"recipe={recipe}", f"data.dir={qa_corpus()}", f"run_dir={run_dir}",
            f"core.checkpoint={ckpt}", *TINY_MODEL, *TINY_DATA, *QUIET,
            "trainer.precision=32-true", "trainer.val_check_interval=1000",
            "trainer.checkpoint_every_n_steps=1000", *extra]
