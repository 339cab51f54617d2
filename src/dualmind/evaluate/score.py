"""Scoring a split: the code length of every byte of its text, under a two-headed model or a
BPE baseline, and the model FLOPs that cost per byte.

Both kinds of model are scored on exactly the same bytes: records are laid out in windows that
fit each model's context (:mod:`dualmind.train.align_windows`), never cut, and the windows' bytes
add up to the records' bytes (`SystemBits.dropped_bytes` is 0, or the report says otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from dualmind.evaluate.report import SystemBits


def core_nll(logits: torch.Tensor, core_ids: torch.Tensor, core_doc: torch.Tensor
             ) -> tuple[float, int]:
    """Nats to code every real core symbol of the rows; the first of each row costs ln V."""
    logits = logits.float()
    real = core_doc >= 0
    nll = F.cross_entropy(logits[:, :-1].flatten(0, 1), core_ids[:, 1:].flatten(),
                          reduction="none").view(core_ids.shape[0], -1)
    total = float((nll * real[:, 1:]).sum()) + math.log(logits.shape[-1]) * int(real[:, 0].sum())
    return total, int(real.sum())


def lm_nll(lm, batch: dict) -> tuple[float, int]:
    """A plain LM over the text ids: NLL of every target (BOS-prefixed input, EOS at the end)."""
    from dualmind.model.loss import IGNORE
    from dualmind.train.align import core_doc_ids

    doc = batch["alignment"].text_doc
    logits = lm(batch["text_ids"], doc_ids=core_doc_ids(doc)).logits.float()
    targets = batch["targets"]
    nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                          reduction="sum")
    return float(nll), int((targets != IGNORE).sum())


def context_lengths(core, decoder, meta: dict | None = None) -> tuple[int, int]:
    """(core units, text positions) per scored row: the context each model was trained with
    (meta["context"], from the checkpoint's config) or, failing that, its max_seq_len."""
    from dualmind.train.align_datamodule import NO_LIMIT

    context = (meta or {}).get("context") or {}
    if decoder is None:  # the BPE baseline reads text only
        return NO_LIMIT, int(context.get("text") or core.cfg.max_seq_len)
    return (int(context.get("core") or core.cfg.max_seq_len),
            int(context.get("text") or decoder.cfg.max_seq_len))


def select_records(shards, lang: str, max_records: int | None = None,
                   documents: int | None = None):
    """Indices of the records of `lang` among the split's first `max_records` records (all by
    default), or of its first `documents` documents, whole: what --max-records and --documents
    mean with --lang and without it."""
    from dualmind.train.align_datamodule import records_of_documents, records_of_language

    if documents is not None:
        return records_of_documents(shards, lang, documents)
    records = records_of_language(shards, lang)
    n = len(shards) if max_records is None else min(max_records, len(shards))
    return records[records < n]


def score_split(core, decoder, corpus_dir: str | Path, split: str = "val",
                max_records: int | None = None, batch_size: int = 4,
                mask_mode: str | None = None, expect_lexicon: str | None = None,
                context: tuple[int, int] | None = None, lang: str | None = None,
                records: Sequence[int] | None = None, control: bool = True) -> SystemBits:
    """Summed code length of the split's first `max_records` records (all by default).

    context: (core units, text positions) per row; default: :func:`context_lengths`.
    lang: only the records in this language (e.g. "en", "ru") among the first `max_records`
    (:func:`select_records`), in their order.
    records: exactly these record indices, in this order (lang and max_records then unused).
    mask_mode: default the decoder's own (decoder.cfg.mask_mode).
    control: also score every batch with each row reading the next row's core (the shuffled-
    states control, ``SystemBits.shuffled_nll``); None when no batch has two rows to swap (a
    single row, or batch_size 1): no batch is left with one row alone (the last joins the one
    before it)."""
    from dualmind.data.open_corpus import open_shards
    from dualmind.model.core_reading import view_of
    from dualmind.train.align import core_doc_ids, decoder_nll, shuffled
    from dualmind.train.align_datamodule import AlignPacks, collate_aligned

    shards = open_shards(corpus_dir, split, expect_lexicon)
    _check_vocabulary(shards, core, decoder, corpus_dir)
    special = shards.manifest.get("tokenizer", {}).get("special", {})
    core_len, text_len = context or context_lengths(core, decoder)
    if records is not None:
        records = list(records)
    elif lang is not None:
        records = select_records(shards, lang, max_records).tolist()
    packs = AlignPacks(shards, core_len, text_len, int(special.get("bos", 1)),
                       int(special.get("eos", 2)), limit_records=max_records, records=records)
    bits = SystemBits(records=packs.records, split_bytes=packs.split_bytes,
                      windowed=packs.windowed, windows=packs.windows)
    starts = list(range(0, len(packs), batch_size))
    if len(packs) % batch_size == 1 and len(starts) > 1:
        starts.pop()  # no batch of one row: the control needs another row to read (B+1 rows)
    ends = [*starts[1:], len(packs)]
    control = control and decoder is not None and len(packs) > 1 and batch_size > 1
    bits.shuffled_nll = 0.0 if control else None  # None: not measured (no second row to read)
    with torch.no_grad():
        for start, end in zip(starts, ends, strict=True):
            batch = collate_aligned([packs[i] for i in range(start, end)])
            bits.text_bytes += int(batch["text_bytes"].sum())
            if decoder is None:  # the BPE baseline: the same text + EOS, no core
                nll, n = lm_nll(core, batch)
                bits.decoder_nll += nll
                bits.text_positions += n
                continue
            core_doc = batch["alignment"].core_doc
            read = decoder.cfg.core_read  # one forward: the core's code and the decoder's view
            out = core(batch["core_ids"], doc_ids=core_doc_ids(core_doc),
                       return_hidden_states=read == "mix")
            c_nll, c_pos = core_nll(out.logits, batch["core_ids"], core_doc)
            bits.core_nll += c_nll
            bits.core_positions += c_pos
            states = view_of(out, read, core, batch["core_ids"],
                             batch["alignment"].core_scene_groups())
            code = decoder_nll(decoder, states, batch, mask_mode)
            bits.decoder_nll += float(code.nll)
            bits.pointer_nll += float(code.pointer_nll)
            bits.text_positions += int(code.targets)
            if control:
                other, other_ids = shuffled(states, batch["core_ids"])
                bits.shuffled_nll += float(decoder_nll(decoder, other, batch, mask_mode,
                                                       core_ids=other_ids).nll)
    return bits


def _check_vocabulary(shards, core, decoder, corpus_dir) -> None:
    """Ids the model has no embedding for would fail deep in a forward; name the mismatch."""
    from dualmind.evaluate.report import EvalError

    text_model = decoder if decoder is not None else core
    if shards.text_vocab_size > text_model.cfg.vocab_size:
        raise EvalError(f"{corpus_dir}: its text tokenizer has {shards.text_vocab_size} tokens, "
                        f"the {'decoder' if decoder is not None else 'BPE model'} only "
                        f"{text_model.cfg.vocab_size}: it was trained on another corpus' "
                        "tokenizer")
    if decoder is not None and shards.core_vocab_size > core.cfg.vocab_size:
        raise EvalError(f"{corpus_dir}: its lexicon has {shards.core_vocab_size} units, the "
                        f"core only {core.cfg.vocab_size}")


def flops_per_byte(core, decoder, bits: SystemBits, context: tuple[int, int] | None = None
                   ) -> dict[str, float]:
    """Model FLOPs per byte of text, core and decoder positions counted separately."""
    core_len, text_len = context or context_lengths(core, decoder)
    nbytes = max(bits.text_bytes, 1)
    out = {}
    if decoder is None:
        for mode, training in (("forward", False), ("train", True)):
            per = core.cfg.flops_per_token(text_len, training=training)
            out[f"lm_{mode}"] = per * bits.text_positions / nbytes
        return out
    for mode, training in (("forward", False), ("train", True)):
        core_per = core.cfg.flops_per_token(core_len, training=training)
        dec_per = decoder.cfg.flops_per_token(text_len, core_len, training=training)
        out[f"core_{mode}"] = core_per * bits.core_positions / nbytes
        out[f"decoder_{mode}"] = dec_per * bits.text_positions / nbytes
    return out
