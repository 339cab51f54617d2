"""The decoder's own tokenizer: a byte-level BPE trained with `tokenizers` on the corpus.

Byte-level means every string round-trips: decode(encode(text)) == text, which lets the shards
prove their alignment (text tokens decode back to the scene text, token bytes sum to n_bytes).
No normalizer and no prefix space are used, for the same reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>", "<|unk|>")  # ids 0..3, like the lexicon's
TOKENIZER_FILE = "tokenizer.json"  # in a corpus folder (`corpus build`) and beside an export
PAD, BOS, EOS, UNK = 0, 1, 2, 3


def train_text_tokenizer(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2):
    """Train a byte-level BPE on `texts` (an iterator is fine: tokenizers streams it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} "
            f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens), got {vocab_size}"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def load_text_tokenizer(path: str | Path):
    """Load tokenizer.json so that special-token strings in *text* stay text.

    Without this, a corpus line containing the literal "<|bos|>" would be encoded as the BOS
    id, and the decoder would learn a false sequence boundary. The flag is not stored in
    tokenizer.json, so always load it through here."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.encode_special_tokens = True
    return tok


def find_text_tokenizer(model_path: str | Path, corpus_dir: str | Path | None
                        ) -> tuple[Path | None, str]:
    """Where the decoder's tokenizer of a model lies: ``tokenizer.json`` beside the model (an
    export folder) or in its parent folder (a bridge folder's layout), else in the training corpus
    folder (the run's ``data.dir``) under the name its manifest records. (path, "") when found,
    else (None, why not): the bridge and the visualiser both look here, in this order."""
    import json

    where = Path(model_path)
    tried = []
    for folder in (where, where.parent):
        tried.append(folder / TOKENIZER_FILE)
        if tried[-1].is_file():
            return tried[-1], ""
    beside = f"no {TOKENIZER_FILE} beside {where} (tried {', '.join(map(str, tried))})"
    if not corpus_dir:
        return None, (f"{beside}, and it does not record its corpus folder (data.dir), where the "
                      "decoder's text tokenizer lives")
    corpus = Path(corpus_dir)
    if not corpus.is_dir():
        return None, f"{beside}, and the run's corpus {corpus} is not here"
    manifest = corpus / "manifest.json"
    info = {}
    if manifest.is_file():
        info = json.loads(manifest.read_text(encoding="utf-8")).get("tokenizer") or {}
    path = corpus / info.get("file", TOKENIZER_FILE)
    if not path.is_file():
        return None, f"{beside}, and the corpus {corpus} has no text tokenizer ({path} is missing)"
    return path, ""


def tokenizer_fingerprint(tok) -> str:
    return hashlib.sha256(tok.to_str().encode("utf-8")).hexdigest()[:16]


def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode table used by the ByteLevel pre-tokenizer."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def token_byte_lengths(tok) -> np.ndarray:
    """Number of UTF-8 bytes each token id stands for (special tokens: their literal text).

    Used to place every token at its byte offset in the scene, so each one can be attributed
    to the lexicon unit covering that byte."""
    dec = _byte_decoder()
    vocab = tok.get_vocab(with_added_tokens=True)
    special = {t.content for t in tok.get_added_tokens_decoder().values()}
    lengths = np.zeros(max(vocab.values()) + 1, dtype=np.int64)
    for token, idx in vocab.items():
        if token in special:
            lengths[idx] = len(token.encode("utf-8"))
        else:
            lengths[idx] = (
                sum(1 for ch in token if ch in dec)
                if all(ch in dec for ch in token)
                else len(token.encode("utf-8"))
            )
    return lengths
