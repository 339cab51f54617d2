"""The equal-compute study (issue 4): the two-headed model, for both lexicon levels, against an
ordinary BPE language model trained with the same FLOPs, scored on the same held-out bytes.

    .venv/bin/python benchmarks/equal_compute.py                 # ~25 min on 2 quiet cores
    .venv/bin/python benchmarks/equal_compute.py --budget 2e13   # smaller, faster, noisier
    .venv/bin/python benchmarks/equal_compute.py --train en.txt ru.txt --heldout en_val.txt \
        ru_val.txt --work runs/bench/mine    # your own text: report and plot go in --work

Steps:
1. From the embedded demo documents (or --train and --heldout files: txt/jsonl/parquet, folders,
   globs, read as `dualmind corpus build` reads them, bad input stopping the study), learn a
   semantic and a lossless lexicon on the training documents (the held-out ones never seen, as
   in `make demo`), and build one corpus per level: same documents, same scenes, same val split
   (with files: the --heldout documents, `corpus build --heldout`; checked: same held-out bytes).
2. Two-headed model, per level: pretrain the mini core (recipe core_mini) on `core_share` of the
   budget, then align the mini decoder to the frozen core (recipe decoder_align) on the rest;
   alignment pays for the decoder's training AND the frozen core's forward.
3. BPE baseline (recipe baseline_bpe_mini) on the whole budget.
   Steps come from FLOPs counted on the very batches each run draws (equal_compute_flops.py).
4. Score all three on the held-out text of each language with `dualmind eval`'s machinery
   (every byte scored, records longer than a context in windows; for the two-headed systems
   also with every row reading another row's core: the bits taken from the core), render the
   first held-out scenes of each language from each two-headed system's core (chrF beside the
   same rendering from another scene's core), and write the table, the bpb-vs-FLOPs plot and
   the examples into
   benchmarks/RESULTS.md (<!-- equal_compute:start/end -->) and benchmarks/equal_compute.png;
   on --train files into WORK/equal_compute.md and WORK/equal_compute.png instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from equal_compute_flops import (  # noqa: E402 - benchmarks/ on the path first
    Schedule,
    align_batch_flops,
    constant_steps,
    core_step_flops,
    lm_batch_flops,
    split_budget,
    steps_for_budget,
)
from equal_compute_report import LEVELS  # noqa: E402


def build_corpora(work: Path, train: list[str] | None = None,
                  heldout: list[str] | None = None, units: dict[str, int] | None = None
                  ) -> dict[str, tuple[Path, Path]]:
    """{level: (lexicon dir, corpus dir)}: the embedded demo documents split as `make demo` does,
    or the user's `train` files with the `heldout` ones as the val split (`corpus build
    --heldout`). Either way the lexicons learn from the training documents only. units: a
    level's lexicon size other than the mini core's vocabulary (its folders say so: -u<N>)."""
    from dualmind.config.schema import compose
    from dualmind.data.build.corpus import build_corpus
    from dualmind.lexicon.lexicon import Lexicon

    check_same_inputs(work, train, heldout)
    if train is None:
        train_texts, inputs, options = demo_training_texts(), None, {}
    else:
        # errors="fail": a study on bytes that were silently repaired would not be the user's
        train_texts, inputs = training_texts(train, heldout), list(train)
        options = {"heldout": tuple(heldout), "errors": "fail"}
    vocab = int(compose(["recipe=core_mini"]).model.vocab_size)
    out = {}
    for level in LEVELS:
        size = (units or {}).get(level, vocab)
        name = level if size == vocab else f"{level}-u{size}"  # the run folders follow it
        lex_dir, corpus = work / f"lexicon-{name}", work / f"corpus-{name}"
        t = time.perf_counter()
        if not lex_dir.is_dir():  # deterministic: a rerun reuses it, and the corpus with it
            Lexicon.build(train_texts, level=level, vocab_size=size).save(lex_dir)
        build_corpus(inputs, lex_dir, corpus, num_shards=4, workers=2, progress=False, **options)
        print(f"[{level}] lexicon + corpus ready in {time.perf_counter() - t:.0f} s -> {corpus}",
              flush=True)
        out[level] = (lex_dir, corpus)
    return out


def demo_training_texts() -> list[str]:
    """The demo documents the corpus build will not hold out (its own choose_val, same keys)."""
    from dualmind.data.build.options import BuildOptions
    from dualmind.data.build.plan import choose_val
    from dualmind.sources.demo import load_demo_documents

    docs = load_demo_documents()
    rows = [{"doc": i, "key": d.id, "lang": d.lang, "kind": "doc", "chars": len(d.text)}
            for i, d in enumerate(docs)]
    held_out = choose_val(rows, BuildOptions().val_fraction)
    return [d.text for i, d in enumerate(docs) if i not in held_out]


def training_texts(train: list[str], heldout: list[str]) -> list[str]:
    """The training files' texts, read as `dualmind lexicon build` reads them; a file also named
    as held out (`--train data/ --heldout data/val/`) is held out, as the corpus build holds it."""
    from dualmind.sources.documents import read_documents
    from dualmind.sources.problems import Problems
    from dualmind.sources.readers import expand_inputs

    held = {f.resolve() for f in expand_inputs(heldout)}
    files = [f for f in expand_inputs(train) if f.resolve() not in held]
    texts = []
    for doc in read_documents(files, Problems("fail")):
        texts += [doc.text] + ([doc.target] if doc.target else [])
    return texts


def check_same_inputs(work: Path, train: list[str] | None, heldout: list[str] | None) -> None:
    """A work folder serves one set of inputs: its lexicons are reused on a rerun, so a rerun on
    other files would silently score lexicons learned from the old ones."""
    import json

    from dualmind.sources.readers import expand_inputs

    record = {"train": None, "heldout": None} if train is None else {
        "train": [str(f.resolve()) for f in expand_inputs(train)],
        "heldout": [str(f.resolve()) for f in expand_inputs(heldout)]}
    path = work / "inputs.json"
    work.mkdir(parents=True, exist_ok=True)
    if path.is_file() and json.loads(path.read_text(encoding="utf-8")) != record:
        raise SystemExit(f"{path}: this work folder was made from other inputs ("
                         f"{path.read_text(encoding='utf-8').strip()}); pass another --work")
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def align_schedule(overrides: list[str], budget: float) -> Schedule:
    """Steps of a stage-align or stage-lm run that spend `budget`, on its own batches."""
    from omegaconf import OmegaConf

    from dualmind.config.schema import compose
    from dualmind.model.config import CoreConfig
    from dualmind.model.decoder_config import DecoderConfig
    from dualmind.train.align_datamodule import AlignDataModule, AlignTrainBatches

    cfg = compose(overrides)
    dm = AlignDataModule.from_config(cfg).prepare()
    batches = AlignTrainBatches(dm.train_packs, int(cfg.data.batch_size), int(cfg.data.seed))
    model = CoreConfig.from_dict(OmegaConf.to_container(cfg.model, resolve=True))
    if cfg.stage == "lm":
        return steps_for_budget(budget, lambda j: lm_batch_flops(model, batches.batch(j)))
    # for_core, as training builds it: core_layers / core_vocab_size (layer mix, copy channel)
    # come from the core, and their FLOPs with them (from_dict alone left them out)
    decoder = DecoderConfig.for_core(OmegaConf.to_container(cfg.decoder, resolve=True), model)
    return steps_for_budget(budget, lambda j: align_batch_flops(model, decoder, batches.batch(j)))


VAL_BATCHES = 4  # validation during training: the curve's points (the table scores all)


def run_training(overrides: list[str], steps: int) -> dict:
    from dualmind.train.loop import train

    every = max(5, steps // 5)
    # Warmup a tenth of every run, whatever its length: a fixed 30 would eat most of a short
    # run and little of a long one, favouring the system that affords more steps.
    result = train([*overrides, f"trainer.max_steps={steps}",
                    f"optim.warmup_steps={max(1, steps // 10)}",
                    f"trainer.val_check_interval={every}",
                    f"trainer.checkpoint_every_n_steps={every}",
                    f"data.val_max_batches={VAL_BATCHES}",
                    "trainer.enable_progress_bar=false", "trainer.loggers=[csv]"])
    print(result.summary(), flush=True)
    return {"wall_s": result.wall_s, "val": list(result.val), "checkpoint": result.last_checkpoint,
            "steps": result.steps}


def core_schedule(core_overrides: list[str], budget: float, core_share: float) -> Schedule:
    """Steps of the core pretraining run that spend `core_share` of a two-headed budget (every
    core row is full, so each step costs the same)."""
    from dualmind.config.schema import compose
    from dualmind.model.config import CoreConfig

    cfg = compose(core_overrides)
    per_step = core_step_flops(CoreConfig.from_dict(dict(cfg.model)), int(cfg.data.seq_len),
                               int(cfg.data.batch_size))
    return constant_steps(split_budget(budget, core_share, per_step), per_step)


def train_two_headed(level: str, corpus: Path, work: Path, budget: float, core_share: float,
                     extra: list[str], core_extra: Sequence[str] = (),
                     runs: Path | None = None, lexicon: Path | None = None) -> dict:
    """core_extra: overrides of the core run (a shape, a batch size), the decoder's in `extra`;
    runs: the folder of the two run folders (default `work`); lexicon: the corpus' lexicon
    (default WORK/lexicon-<level>; the run folders are named after it)."""
    runs = runs or work
    lexicon = lexicon or work / f"lexicon-{level}"
    name = lexicon.name.removeprefix("lexicon-")
    core_over = ["recipe=core_mini", f"data.dir={corpus}", f"run_dir={runs}/{name}-core",
                 *core_extra]
    core_sched = core_schedule(core_over, budget, core_share)
    print(f"[{level}] core: {core_sched.steps} steps, {core_sched.flops:.3g} FLOPs", flush=True)
    core = run_training(core_over, core_sched.steps)
    align_over = ["recipe=decoder_align", f"data.dir={corpus}", f"run_dir={runs}/{name}-align",
                  f"core.checkpoint={core['checkpoint']}", f"data.lexicon={lexicon}", *extra]
    align_sched = align_schedule(align_over, budget - core_sched.flops)
    print(f"[{level}] align: {align_sched.steps} steps, {align_sched.flops:.3g} FLOPs",
          flush=True)
    align = run_training(align_over, align_sched.steps)
    return {"core": core, "align": align, "core_schedule": core_sched,
            "align_schedule": align_sched, "flops": core_sched.flops + align_sched.flops,
            "wall_s": core["wall_s"] + align["wall_s"]}


def train_baseline(corpus: Path, work: Path, budget: float, extra: Sequence[str] = ()) -> dict:
    over = ["recipe=baseline_bpe_mini", f"data.dir={corpus}", f"run_dir={work}/baseline", *extra]
    sched = align_schedule(over, budget)
    print(f"[baseline] {sched.steps} steps, {sched.flops:.3g} FLOPs", flush=True)
    run = run_training(over, sched.steps)
    return {"run": run, "schedule": sched, "flops": sched.flops, "wall_s": run["wall_s"]}


def score(checkpoint: Path, corpus: Path, documents: int | None = None) -> dict:
    """Held-out bits per byte per language (of its first `documents` documents, whole, or all),
    from summed code lengths."""
    from dualmind.data.open_corpus import open_shards
    from dualmind.evaluate.load import load_models
    from dualmind.evaluate.score import context_lengths, score_split
    from dualmind.train.align_datamodule import records_of_documents

    model, decoder, meta = load_models(checkpoint)
    context = context_lengths(model, decoder, meta)
    expect = meta.get("lexicon_fingerprint") if decoder is not None else None
    val = open_shards(corpus, "val")
    t = time.perf_counter()
    out = {lang: score_split(model, decoder, corpus, "val", batch_size=4, context=context,
                             expect_lexicon=expect,
                             records=records_of_documents(val, lang, documents or len(val)))
           for lang in sorted(val.languages())}
    print(f"scored {checkpoint} in {time.perf_counter() - t:.0f} s", flush=True)
    return out


def render(checkpoint: Path, corpus: Path, lexicon: Path, scenes: int) -> dict:
    """{lang: renderings} of the first `scenes` held-out scenes per language, each whole and
    greedy from the frozen core's states, each also rendered from the next scene's states of
    its language (the control: what a rendering gets from the shared names and register)."""
    from dualmind.data.open_corpus import open_shards
    from dualmind.evaluate.load import load_models
    from dualmind.evaluate.render import render_scenes
    from dualmind.train.align_datamodule import records_of_language

    model, decoder, _ = load_models(checkpoint)
    val = open_shards(corpus, "val")
    out = {}
    for lang in sorted(val.languages()):
        picks = [int(i) for i in records_of_language(val, lang)[:scenes]]
        out[lang] = render_scenes(model, decoder, corpus, "val", lexicon_dir=lexicon,
                                  records=picks)
    return out


def core_shares(given: list[str]) -> dict[str, float]:
    """{level: core share} from `0.5` (both levels) or `lossless=0.8 semantic=0.4` (each)."""
    if len(given) == 1 and "=" not in given[0]:
        given = [f"{level}={given[0]}" for level in LEVELS]
    shares = {}
    for item in given:
        level, _, value = item.partition("=")
        if level not in LEVELS or not value:
            raise ValueError(f"{item!r} is no LEVEL=SHARE ({'/'.join(LEVELS)}): give one "
                             "number for both levels or LEVEL=SHARE for each (decoder_align "
                             "overrides go after `--`)")
        if level in shares:
            raise ValueError(f"{item!r}: {level} was given a share already")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not 0 < share < 1:
            raise ValueError(f"{item!r}: a share is between 0 and 1 (the rest aligns the decoder)")
        shares[level] = share
    missing = [level for level in LEVELS if level not in shares]
    if missing:
        raise ValueError(f"no share for {', '.join(missing)} (LEVEL=SHARE for each of {LEVELS})")
    return shares


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: give a number >= 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bench/equal_compute", help="working folder")
    parser.add_argument("--budget", type=float, default=5e13,
                        help="training FLOPs of every system (default 5e13)")
    parser.add_argument("--core-share", nargs="+", default=["lossless=0.8", "semantic=0.35"],
                        metavar="SHARE",
                        help="share of a two-headed budget spent pretraining the core: one for "
                             "both levels (0.5) or one per level (default lossless=0.8 "
                             "semantic=0.35: the best splits measured, RESULTS.md)")
    parser.add_argument("--lossless-units", type=positive, default=None, metavar="N",
                        help="the lossless lexicon's size (default: core_mini's vocabulary); "
                             "the core's vocabulary follows it")
    parser.add_argument("--render-scenes", type=positive, default=3,
                        help="held-out scenes rendered per language and level (default 3; the "
                             "control needs two)")
    parser.add_argument("--documents", type=int, default=None,
                        help="score only the first N held-out documents per language (whole "
                             "documents: the same bytes under both lexicons); default all")
    parser.add_argument("--train", nargs="+", default=None, metavar="FILE",
                        help="training text: txt/jsonl/parquet files, folders or globs (default: "
                             "the embedded demo corpus); needs --heldout")
    parser.add_argument("--heldout", nargs="+", default=None, metavar="FILE",
                        help="held-out text scored for the table (the val split); needs --train")
    parser.add_argument("--no-write", action="store_true",
                        help="print only: no RESULTS.md section, no plot, no WORK/equal_compute.md")
    parser.add_argument("align_overrides", nargs="*", help="extra overrides for decoder_align")
    args = parser.parse_args(argv)
    if (args.train is None) != (args.heldout is None):
        parser.error("--train and --heldout go together (neither: the embedded demo corpus)")
    for flag, items in (("--train", args.train), ("--heldout", args.heldout)):
        # `--heldout val.txt decoder.x=1` hands the override to --heldout, not to the align run
        stray = [i for i in items or () if "=" in i and not Path(i).exists()]
        if stray:
            parser.error(f"{flag} got {' '.join(stray)}: an override, not a file? Put "
                         f"decoder_align overrides after `--` (--heldout val.txt -- decoder.x=1)")
    try:
        shares = core_shares(args.core_share)
    except ValueError as err:
        parser.error(f"--core-share: {err}")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    units = {} if args.lossless_units is None else {"lossless": args.lossless_units}
    corpora = build_corpora(work, args.train, args.heldout, units)
    runs: dict[str, dict] = {}
    for level in LEVELS:
        vocab = [f"model.vocab_size={units[level]}"] if level in units else []
        runs[level] = train_two_headed(level, corpora[level][1], work, args.budget,
                                       shares[level], [*vocab, *args.align_overrides],
                                       core_extra=vocab, lexicon=corpora[level][0])
    runs["baseline"] = train_baseline(corpora["semantic"][1], work, args.budget)
    for level in LEVELS:
        runs[level]["scores"] = score(runs[level]["align"]["checkpoint"], corpora[level][1],
                                      args.documents)
    runs["baseline"]["scores"] = score(runs["baseline"]["run"]["checkpoint"],
                                       corpora["semantic"][1], args.documents)
    renderings = {level: render(runs[level]["align"]["checkpoint"], corpora[level][1],
                                corpora[level][0], args.render_scenes) for level in LEVELS}
    from equal_compute_report import check_same_bytes, markdown, plot

    check_same_bytes(runs)
    total_s = time.perf_counter() - t0
    text = markdown(runs, renderings, args, total_s, os.getloadavg()[1])
    print(text)
    if args.no_write:
        return 0
    # the project's RESULTS.md reports the demo corpus; a study on other text stays in --work
    where = HERE if args.train is None else work
    plot(runs, where / "equal_compute.png", corpus="demo corpus" if args.train is None
         else "your corpus")
    if args.train is None:
        from results_md import write_section

        write_section("equal_compute", text)
        print(f"wrote {HERE / 'RESULTS.md'} and {HERE / 'equal_compute.png'}")
    else:
        (work / "equal_compute.md").write_text(text + "\n", encoding="utf-8")
        print(f"wrote {work / 'equal_compute.md'} and {work / 'equal_compute.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
