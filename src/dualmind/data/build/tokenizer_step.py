"""Step 2 of a build: the decoder's byte-level BPE, trained on the train and qa documents only
(never on val, which must stay unseen) and written to OUT/tokenizer.json."""

from __future__ import annotations

from pathlib import Path

from dualmind.data.build.document_staging import StagedDocuments
from dualmind.data.build.files import atomic_write_text
from dualmind.data.text_tokenizer import load_text_tokenizer, train_text_tokenizer


def train_tokenizer_step(out_dir: Path, plan: dict, vocab_size: int):
    path = out_dir / "tokenizer.json"
    if path.is_file():
        return load_text_tokenizer(path)
    staged = StagedDocuments(out_dir)
    train_docs = [
        i
        for split in ("train", "qa")
        if split in plan["splits"]
        for shard in plan["splits"][split]["shards"]
        for i in shard
    ]

    def texts():
        for d in staged.read(sorted(train_docs)):
            yield d["text"]
            if "target" in d:
                yield d["target"]

    tok = train_text_tokenizer(texts(), vocab_size=vocab_size)
    atomic_write_text(path, tok.to_str(pretty=True))
    return load_text_tokenizer(path)  # reload: the shards must use exactly what is on disk
