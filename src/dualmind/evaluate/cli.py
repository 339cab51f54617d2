"""`dualmind eval`: the honest yardstick of the two-headed model on held-out text.

System bits per byte: the hyperphrase h is a deterministic function of the text, so

    bpb = (NLL_core(h) + NLL_decoder(text | core(h))) / (ln 2 · bytes of text)

is a complete code length of the text, comparable with a BPE language model's bits per byte.
Both parts are reported on their own too. The code is charged in full, nothing is free:
- the core pays every unit and the EOS that ends each record's units (where the scene ends, as
  it was pretrained); the first unit of each packed row, which has no context, is charged a
  uniform ln(core vocab) nats;
- the decoder pays every text token and the EOS that ends each record (where the text stops);
- a record longer than one context is scored in windows, never cut, so every byte is paid for
  and a BPE baseline (stage=lm, recipe=baseline_bpe_mini) is scored on exactly the same bytes.

Also: greedy reconstruction of a few scenes (decoder rendering from the core's states alone,
against the original text: chrF and exact-word accuracy), and FLOPs per byte of text for the
core positions and the decoder positions, separately (forward = inference, 6N = training).

The pieces: :mod:`dualmind.evaluate.load` (checkpoints, exports, the core pairing check),
:mod:`dualmind.evaluate.score` (code lengths, FLOPs), :mod:`dualmind.evaluate.render` (greedy
renderings, the demo's printout), :mod:`dualmind.evaluate.report` (the report, chrF).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dualmind.evaluate.load import load_models
from dualmind.evaluate.render import render_scenes
from dualmind.evaluate.report import (
    EvalError,
    EvalReport,
    SystemBits,
)
from dualmind.evaluate.score import context_lengths, flops_per_byte, score_split, select_records


def evaluate(checkpoint: str | Path, corpus_dir: str | Path, split: str = "val",
             max_records: int | None = None, scenes: int = 3, batch_size: int = 4,
             mask_mode: str | None = None, lexicon_dir: str | Path | None = None,
             max_new_tokens: int | None = None, core: str | Path | None = None,
             context: tuple[int, int] | None = None, lang: str | None = None,
             documents: int | None = None) -> EvalReport:
    """Score `checkpoint` (align or lm; a .ckpt, run folder or export) on a split of a corpus.

    core: pair the decoder with this core checkpoint/export instead (refused unless it is the
    core the decoder was aligned to). context: (core units, text positions) per scored row;
    default: the rows the checkpoint trained on. lang: only that language's records; by default
    a split of several languages is scored per language (``EvalReport.by_language``) and the
    total is their sum. documents: only the first N documents of each language, whole (every
    scene of each: the same bytes under any lexicon), instead of max_records."""
    if documents is not None and (documents < 1 or max_records is not None):
        raise EvalError("documents: give a number >= 1, and not with max_records (--documents "
                        f"{documents}, --max-records {max_records})")
    model, decoder, meta = load_models(checkpoint, core=core)
    context = context or context_lengths(model, decoder, meta)
    expect = meta.get("lexicon_fingerprint") if decoder is not None else None
    by_language = {}
    if lang is not None:
        from dualmind.data.open_corpus import open_shards

        shards = open_shards(corpus_dir, split, expect)
        records = select_records(shards, lang, max_records, documents).tolist()
        if not records:
            raise EvalError(f"{corpus_dir}: no {split} records in {lang!r}"
                            + (f" among the split's first {max_records}" if max_records else "")
                            + f" (its languages: {', '.join(sorted(shards.languages()))})")
        bits = score_split(model, decoder, corpus_dir, split, None, batch_size, mask_mode,
                           expect_lexicon=expect, context=context, records=records)
    else:
        by_language = _score_by_language(model, decoder, corpus_dir, split, max_records,
                                         batch_size, mask_mode, expect, context, documents)
        parts = list(by_language.values())
        bits = sum(parts[1:], parts[0])  # the control only where every language has it
        if len(by_language) == 1:
            by_language = {}
    report = EvalReport(split, bits, flops_per_byte(model, decoder, bits, context),
                        by_language=by_language)
    if decoder is not None and scenes > 0:
        report.renderings = render_scenes(model, decoder, corpus_dir, split, scenes, lexicon_dir,
                                          max_new_tokens, expect_lexicon=expect)
    return report


def _score_by_language(model, decoder, corpus_dir, split, max_records, batch_size, mask_mode,
                       expect, context, documents=None) -> dict[str, SystemBits]:
    """The split's first `max_records` records (all by default), or the first `documents`
    documents of each language, each language scored apart."""

    from dualmind.data.open_corpus import open_shards

    shards = open_shards(corpus_dir, split, expect)
    out = {}
    for one in shards.languages():
        records = select_records(shards, one, max_records, documents)
        if len(records):
            out[one] = score_split(model, decoder, corpus_dir, split, None, batch_size,
                                   mask_mode, expect_lexicon=expect, context=context,
                                   records=records.tolist())
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="an align (or lm baseline) .ckpt, its run folder, "
                        "a `dualmind export` folder or an `export --format hf` folder")
    parser.add_argument("--data", required=True, help="corpus folder (dualmind corpus build)")
    parser.add_argument("--split", default="val", help="split to score (default: val, held out)")
    parser.add_argument("--max-records", type=int, default=None,
                        help="score only the first N records of the split (with --lang: that "
                             "language's records among them)")
    parser.add_argument("--documents", type=int, default=None,
                        help="score only the first N documents of each language, whole (every "
                             "scene of each: the same bytes under any lexicon, so corpora of two "
                             "lexicons compare); not with --max-records")
    parser.add_argument("--lang", default=None,
                        help="score only this language's records (default: each language of the "
                             "split apart, and their sum)")
    parser.add_argument("--scenes", type=int, default=3,
                        help="scenes to render greedily for chrF / word accuracy (0: none)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--mask-mode", default=None, choices=("render", "stream", "pointer"),
                        help="which core states a token reads (default: the decoder's own, "
                             "as it was trained)")
    parser.add_argument("--lexicon", default=None, help="lexicon folder, to gloss hyperphrases")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="rendering budget per scene (default: its text's length + 16)")
    parser.add_argument("--core", default=None,
                        help="pair the decoder with this core checkpoint or export instead "
                             "(refused unless it is the core the decoder was aligned to)")
    parser.add_argument("--json", default=None, help="also write the report to this JSON file")


def run(args: argparse.Namespace) -> int:
    try:
        report = evaluate(args.checkpoint, args.data, args.split, args.max_records, args.scenes,
                          args.batch_size, args.mask_mode, args.lexicon, args.max_new_tokens,
                          core=args.core, lang=args.lang, documents=args.documents)
    except (EvalError, ValueError) as err:
        print(f"dualmind eval: {err}")
        return 2
    print(report.summary())
    for r in report.renderings:
        print(f"\n  original : {r.original[:300]}\n  hyper    : {r.hyperphrase[:300]}\n"
              f"  rendered : {r.rendered[:300]}" + (f"\n  note     : {r.note}" if r.note else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return 0
