"""What should the decoder read of the frozen core, where should it point, and does copying the
lexicon's surfaces help? (issue 13). Each variant aligns a fresh mini decoder to the SAME frozen
core for the same steps, then is scored on held-out scenes:

    decoder part   bits/byte of text given the core (own states)
    control        the same with every row reading another row's core (rolled in the batch)
    taken          control - decoder part: what the decoder takes from its own scene's core
    renders        greedy renderings of held-out scenes: chrF, the share of the text's words
                   said in order, and exact-word accuracy (same word position)
    wall           training seconds (same machine, same run: compare as ratios)

    .venv/bin/python benchmarks/decoder_reading.py --level lossless \\
        --corpus runs/dr/corpus-lossless --lexicon runs/dr/lexicon-lossless \\
        --core runs/dr/core-lossless/checkpoints/last.ckpt --steps 150

Without --corpus/--lexicon/--core it builds them from the embedded demo documents under --work
(lexicon and corpus as `make demo` does, core_mini for --core-steps). Each variant is its own
run folder; a rerun skips finished ones (results.json beside it). The table goes to
benchmarks/RESULTS.md, section decoder_reading_<level>.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_md import write_section  # noqa: E402 - benchmarks/ on the path first

# name -> decoder overrides. A fractional design (4 reads x 3 pointers x 2 copy = 24 runs is
# more than a CPU session holds): every read under render (the old mask), then the pointer with
# rotary offsets under the reads that could win, then the copy channel on top.
VARIANTS = {
    "final, render": dict(core_read="final", mask_mode="render"),
    "embed, render": dict(core_read="embed", mask_mode="render"),
    "mix, render": dict(core_read="mix", mask_mode="render"),
    "centred, render": dict(core_read="centred", mask_mode="render"),
    "final, pointer": dict(core_read="final", mask_mode="pointer", cross_rope=True),
    "mix, pointer": dict(core_read="mix", mask_mode="pointer", cross_rope=True),
    "embed, pointer": dict(core_read="embed", mask_mode="pointer", cross_rope=True),
    "mix, render+rope": dict(core_read="mix", mask_mode="render", cross_rope=True),
    "mix, pointer, copy": dict(core_read="mix", mask_mode="pointer", cross_rope=True,
                               copy_slots=4),
    "final, pointer, copy": dict(core_read="final", mask_mode="pointer", cross_rope=True,
                                 copy_slots=4),
    "mix, pointer, copy, feed": dict(core_read="mix", mask_mode="pointer", cross_rope=True,
                                     copy_slots=4, pointer_feed=True),
    "embed, pointer, copy, feed": dict(core_read="embed", mask_mode="pointer", cross_rope=True,
                                       copy_slots=4, pointer_feed=True),
    "final, pointer, feed": dict(core_read="final", mask_mode="pointer", cross_rope=True,
                                 pointer_feed=True),
    "mix, pointer, copy, feed, copy-logits": dict(core_read="mix", mask_mode="pointer",
                                                  cross_rope=True, copy_slots=4,
                                                  pointer_feed=True, copy_logits=True),
    "embed, pointer, copy, feed, copy-logits": dict(core_read="embed", mask_mode="pointer",
                                                    cross_rope=True, copy_slots=4,
                                                    pointer_feed=True, copy_logits=True),
    # the pointer moved by the decoder's own boundary head at generation (and paid for in the
    # code length), instead of re-encoding the produced text with the lexicon
    "mix, pointer, copy, feed, copy-logits, boundary": dict(
        core_read="mix", mask_mode="pointer", cross_rope=True, copy_slots=4, pointer_feed=True,
        copy_logits=True, boundary_head=True),
    # the head also reads how many surface tokens of its unit are unsaid, and the token at the
    # slot the unit has reached gets a bonus of its own (a lossless unit is copied to its end)
    "mix, pointer, copy, feed, copy-logits, boundary, lengths": dict(
        core_read="mix", mask_mode="pointer", cross_rope=True, copy_slots=4, pointer_feed=True,
        copy_logits=True, boundary_head=True, unit_lengths=True),
    "mix, pointer, copy8, feed, copy-logits, boundary, lengths": dict(
        core_read="mix", mask_mode="pointer", cross_rope=True, copy_slots=8, pointer_feed=True,
        copy_logits=True, boundary_head=True, unit_lengths=True),
}


def overrides_for(variant: dict) -> list[str]:
    base = dict(core_read="final", mask_mode="render", cross_rope=False, copy_slots=0,
                pointer_feed=False, copy_logits=False, boundary_head=False, unit_lengths=False)
    base.update(variant)
    return [f"decoder.{k}={str(v).lower() if isinstance(v, bool) else v}"
            for k, v in base.items()]


def prepare(work: Path, level: str, core_steps: int) -> tuple[Path, Path, Path]:
    """(lexicon, corpus, core checkpoint) built from the demo documents, reused when present."""
    from dualmind.config.schema import compose
    from dualmind.data.build.corpus import build_corpus
    from dualmind.data.build.options import BuildOptions
    from dualmind.data.build.plan import choose_val
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.sources.demo import load_demo_documents
    from dualmind.train.loop import train

    lex, corpus, run = work / f"lexicon-{level}", work / f"corpus-{level}", work / f"core-{level}"
    if not (lex / "lexicon.json").is_file():
        docs = load_demo_documents()
        rows = [{"doc": i, "key": d.id, "lang": d.lang, "kind": "doc", "chars": len(d.text)}
                for i, d in enumerate(docs)]
        held = choose_val(rows, BuildOptions().val_fraction)
        vocab = int(compose(["recipe=core_mini"]).model.vocab_size)
        Lexicon.build([d.text for i, d in enumerate(docs) if i not in held], level=level,
                      vocab_size=vocab).save(lex)
    # always: up to date in a second, and a corpus built by an older rule (its settings say
    # which) is rebuilt; the core's symbols stay the same, so a trained core is kept
    build_corpus(None, lex, corpus, num_shards=4, workers=2, overwrite=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        train(["recipe=core_mini", f"data.dir={corpus}", f"run_dir={run}",
               f"trainer.max_steps={core_steps}", "trainer.loggers=[csv]"])
    return lex, corpus, ckpt


def run_variant(name: str, variant: dict, args, out: Path) -> dict:
    from dualmind.train.loop import train

    done = out / "results.json"
    if done.is_file():
        return json.loads(done.read_text())
    trained = out / "train.json"  # training done, evaluation not (a rerun only evaluates)
    if trained.is_file():
        checkpoint, wall = (json.loads(trained.read_text())[k] for k in ("checkpoint", "wall"))
        return evaluate_variant(name, checkpoint, wall, args, done)
    t0 = time.perf_counter()
    result = train(["recipe=decoder_align", f"data.dir={args.corpus}", f"run_dir={out}",
                    f"core.checkpoint={args.core}", f"data.lexicon={args.lexicon}",
                    f"trainer.max_steps={args.steps}", f"trainer.val_check_interval={args.steps}",
                    f"trainer.checkpoint_every_n_steps={args.steps}", "data.val_max_batches=2",
                    f"optim.warmup_steps={max(1, args.steps // 10)}",
                    "trainer.enable_progress_bar=false", "trainer.loggers=[csv]",
                    *overrides_for(variant)])
    wall = time.perf_counter() - t0
    trained.write_text(json.dumps({"checkpoint": str(result.last_checkpoint), "wall": wall}))
    return evaluate_variant(name, result.last_checkpoint, wall, args, done)


def evaluate_variant(name: str, checkpoint, wall: float, args, done: Path) -> dict:
    from dualmind.evaluate.cli import evaluate

    report = evaluate(checkpoint, args.corpus, max_records=args.records,
                      scenes=args.scenes, lexicon_dir=args.lexicon)
    b = report.bits
    row = {"variant": name, "decoder_bpb": b.decoder_bpb, "pointer_bpb": b.pointer_bpb,
           "shuffled_bpb": b.shuffled_bpb,
           "taken_bpb": b.taken_from_core_bpb, "core_bpb": b.core_bpb,
           "system_bpb": b.system_bpb, "chrf": report.chrf, "control_chrf": report.control_chrf,
           "word_accuracy": report.word_accuracy, "words_in_order": report.words_in_order,
           "train_s": wall,
           "render": report.renderings[0].rendered[:240] if report.renderings else "",
           "original": report.renderings[0].original[:240] if report.renderings else ""}
    done.write_text(json.dumps(row, indent=2, ensure_ascii=False))
    print(f"[{name}] decoder {row['decoder_bpb']:.3f}  control {row['shuffled_bpb']:.3f}  "
          f"taken {row['taken_bpb']:.3f}  chrF {row['chrf']:.1f}  words in order "
          f"{row['words_in_order']:.2f}  {wall:.0f} s", flush=True)
    return row


def table(rows: list[dict], args) -> str:
    settings = json.loads((Path(args.corpus) / "manifest.json").read_text())["settings"]
    tokens = settings.get("text_tokens", "text")  # corpora built before the option: text
    if tokens == "auto":
        tokens = "units (auto)" if args.level == "lossless" else "text (auto)"
    lines = [f"Level **{args.level}**, corpus {args.corpus} (decoder tokens: {tokens}), "
             f"one frozen core ({args.core}), {args.steps} align steps "
             f"per variant, scored on the first {args.records} held-out records; renders: "
             f"{args.scenes} held-out scenes, greedy. \"of it, pointer\": the bits a boundary "
             "head pays to code where the text moves through the hyperphrase; \"free\": the "
             "alignment is taken from the shards, uncharged. \"chrF, control\": each scene "
             "rendered from the next scene's states, scored against its own text (- : not "
             "measured in that run).", "",
             "| variant | decoder bpb | of it, pointer | control bpb | taken from core | chrF | "
             "chrF, control | words in order | exact words | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pointer = f"{r['pointer_bpb']:.3f}" if r.get("pointer_bpb") else "free"
        control = f"{r['control_chrf']:.1f}" if r.get("control_chrf") is not None else "-"
        in_order = f"{r['words_in_order']:.2f}" if r.get("words_in_order") is not None else "-"
        lines.append(f"| {r['variant']} | {r['decoder_bpb']:.3f} | {pointer} | "
                     f"{r['shuffled_bpb']:.3f} | "
                     f"**{r['taken_bpb']:.3f}** | {r['chrf']:.1f} | {control} | {in_order} | "
                     f"{r['word_accuracy']:.2f} | "
                     f"{r['train_s']:.0f} |")
    def one_line(text: str) -> str:
        return " ".join(text.replace("\n", " ⏎ ").split())

    lowest = min(rows, key=lambda r: r["decoder_bpb"])
    clearest = max(rows, key=lambda r: r["chrf"])
    for what, r in (("Lowest decoder part", lowest), ("Highest chrF", clearest)):
        if what == "Highest chrF" and r is lowest:
            continue
        lines += ["", f"{what}: **{r['variant']}**. Its first greedy render "
                  "(first 240 characters; ⏎ = a line break):", "",
                  f"> original: {one_line(r['original'])}", ">",
                  f"> rendered: {one_line(r['render'])}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--level", choices=("lossless", "semantic"), default="lossless")
    p.add_argument("--work", type=Path, default=Path("runs/decoder_reading"))
    p.add_argument("--corpus", type=Path)
    p.add_argument("--lexicon", type=Path)
    p.add_argument("--core", type=Path, help="a stage-core checkpoint of that lexicon")
    p.add_argument("--core-steps", type=int, default=300)
    p.add_argument("--steps", type=int, default=150, help="align steps per variant")
    p.add_argument("--records", type=int, default=48, help="held-out records scored")
    p.add_argument("--scenes", type=int, default=3, help="held-out scenes rendered")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    p.add_argument("--section-suffix", default="",
                   help="RESULTS.md section decoder_reading_<level><suffix> (e.g. _units for "
                   "another corpus of the same level)")
    args = p.parse_args(argv)
    if not (args.corpus and args.lexicon and args.core):
        args.lexicon, args.corpus, args.core = prepare(args.work, args.level, args.core_steps)
    rows = []
    for name in args.variants:
        slug = name.replace(", ", "-").replace("+", "-")
        rows.append(run_variant(name, VARIANTS[name], args,
                                args.work / f"{args.level}-{args.steps}" / slug))
    text = table(rows, args)
    print(text)
    if not args.no_write:
        write_section(f"decoder_reading_{args.level}{args.section_suffix}", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
