"""The core_mini demo's loss curve: train recipe=core_mini on the embedded demo corpus and write a
table to benchmarks/RESULTS.md (between <!-- core_mini_curve:start/end -->) and a plot to
benchmarks/core_mini_curve.png.

    .venv/bin/python benchmarks/core_mini_curve.py            # builds lexicon + corpus too
    .venv/bin/python benchmarks/core_mini_curve.py --corpus runs/demo/corpus

Without --corpus it builds what the demo builds (a semantic lexicon of the demo texts, capped at
the mini core's 16384 symbols, then `build_corpus` of the demo files) under runs/bench/core_mini/,
and times each part.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

from results_md import write_section  # benchmarks/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
PLOT = HERE / "core_mini_curve.png"




def build_demo_corpus(root: Path, vocab: int, level: str) -> tuple[Path, dict]:
    from dualmind.data.build.corpus import build_corpus
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.sources.demo import load_demo_texts

    timings = {}
    t = time.perf_counter()
    lex = Lexicon.build(load_demo_texts(), level=level, vocab_size=vocab)
    lex.save(root / "lexicon")
    timings["lexicon"] = time.perf_counter() - t
    t = time.perf_counter()
    build_corpus(None, root / "lexicon", root / "corpus", progress=False, overwrite=True)
    timings["corpus"] = time.perf_counter() - t
    return root / "corpus", timings


def unigram_reference(corpus: Path, seq_len: int, limit: int) -> tuple[float, float]:
    """(nats/symbol, bits/byte) of a unigram model (train counts, add-one smoothed) on the very
    val windows the core is validated on: what ignoring context scores; below it, the core is
    using context."""
    import numpy as np

    from dualmind.data.open_corpus import open_shards
    from dualmind.train.datamodule import EOS, ValSequences, core_stream

    train = core_stream(open_shards(corpus, "train"), "train")
    val = ValSequences(core_stream(open_shards(corpus, "val"), "val"), seq_len, limit)
    counts = np.bincount(
        np.asarray(train.ids), minlength=open_shards(corpus, "train").core_vocab_size
    )
    counts[EOS] += len(train) - int(train.ids.shape[0])  # the stream's EOS, one per record
    logp = np.log((counts + 1.0) / (counts.sum() + len(counts)))
    nll = text_bytes = symbols = 0.0
    for i in range(len(val)):
        seq = val[i]
        nll -= float(logp[seq["targets"]].sum())
        text_bytes += float(seq["target_bytes"].sum())
        symbols += len(seq["targets"])
    return nll / symbols, nll / (np.log(2) * text_bytes)


def history_from_csv(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(train, val) rows from a run's CSV log; steps counted from 1 like TrainResult's."""
    import csv

    train, val = [], []
    for path in sorted((run_dir / "csv").glob("version_*/metrics.csv")):
        for row in csv.DictReader(open(path)):
            if row.get("train/loss"):
                train.append(
                    {
                        "step": int(row["step"]) + 1,
                        "loss": float(row["train/loss"]),
                        "bpb": float(row["train/bpb"]),
                    }
                )
            if row.get("val/loss"):
                val.append(
                    {
                        "step": int(row["step"]) + 1,
                        "loss": float(row["val/loss"]),
                        "bpb": float(row["val/bpb"]),
                    }
                )
    return train, val


def plot(
    train: list[dict], val: list[dict], path: Path, unigram: tuple[float, float] | None = None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = [x["step"] for x in train]
    for ax, key, label, ref in (
        (axes[0], "loss", "nats per symbol", unigram and unigram[0]),
        (axes[1], "bpb", "bits per byte of text", unigram and unigram[1]),
    ):
        ys = [x[key] for x in train]
        smooth = [
            sum(ys[max(0, i - 9) : i + 1]) / len(ys[max(0, i - 9) : i + 1]) for i in range(len(ys))
        ]
        ax.plot(steps, ys, lw=0.7, alpha=0.4, label="train (per step)")
        ax.plot(steps, smooth, lw=1.6, label="train (10-step mean)")
        if val:
            ax.plot(
                [v["step"] for v in val], [v[key] for v in val], "o-", label="val (held-out docs)"
            )
        if ref:
            ax.axhline(ref, ls="--", color="grey", lw=1, label="val, unigram model (no context)")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("core_mini on the demo corpus (hyper-core, 2 CPU cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", help="a built corpus folder (default: build the demo's)")
    p.add_argument("--out", default="runs/bench/core_mini")
    p.add_argument("--lexicon-vocab", type=int, default=16384, help="<= the mini core's vocab_size")
    p.add_argument(
        "--level",
        default="semantic",
        choices=["semantic", "lossless"],
        help="lexicon level (the demo pretrains on the semantic one)",
    )
    p.add_argument("--no-write", action="store_true")
    p.add_argument(
        "--replot", metavar="RUN_DIR", help="only redraw the PNG from a finished run's CSV log"
    )
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer.max_steps=100")
    a = p.parse_args()
    if a.replot:
        corpus = Path(a.corpus or Path(a.replot).parent / "corpus")
        plot(*history_from_csv(Path(a.replot)), PLOT, unigram_reference(corpus, 256, 64))
        print(f"wrote {PLOT}")
        return

    from dualmind.train.loop import train

    out = Path(a.out)
    timings = {}
    corpus = Path(a.corpus) if a.corpus else None
    if corpus is None:
        corpus, timings = build_demo_corpus(out, a.lexicon_vocab, a.level)
    t = time.perf_counter()
    result = train(
        [
            "recipe=core_mini",
            f"data.dir={corpus}",
            f"run_dir={out / 'run'}",
            "trainer.enable_progress_bar=false",
            *a.overrides,
        ]
    )
    timings["train"] = time.perf_counter() - t
    print(result.summary())

    from dualmind.config.schema import compose

    cfg = compose(["recipe=core_mini", *a.overrides])
    rows = [
        "| step | train loss (nats/symbol, 10-step mean) | train bits/byte | val loss "
        "| val bits/byte |",
        "|---|---|---|---|---|",
    ]
    val = {v["step"]: v for v in result.val}
    marks = sorted({1, *val, *range(25, result.steps + 1, 25)})
    for s in marks:
        window = [x for x in result.train if s - 10 < x["step"] <= s]
        if not window:
            continue
        loss = sum(x["loss"] for x in window) / len(window)
        bpb = sum(x["bpb"] for x in window) / len(window)
        v = val.get(s)
        rows.append(
            f"| {s} | {loss:.3f} | {bpb:.3f} | {v['loss']:.3f} | {v['bpb']:.3f} |"
            if v
            else f"| {s} | {loss:.3f} | {bpb:.3f} | | |"
        )
    from dualmind.config.precision import resolve

    precision = resolve(cfg.trainer.precision, cfg.trainer.accelerator)  # what the run used
    uni_nats, uni_bpb = unigram_reference(
        corpus, cfg.data.seq_len, cfg.data.val_max_batches * cfg.data.batch_size
    )
    total = sum(timings.values())
    syms = sum(1 for _ in result.train) * cfg.data.batch_size * cfg.data.seq_len
    text = "\n".join(
        [
            "## core_mini loss curve (the demo's pretraining)",
            "",
            f"`benchmarks/core_mini_curve.py`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: recipe core_mini "
            f"({cfg.model.dim}x{cfg.model.n_layers} core, vocab {cfg.model.vocab_size}, "
            f"seq {cfg.data.seq_len} x batch {cfg.data.batch_size}, {precision.line()}, "
            f"lr {cfg.optim.lr}) on the embedded demo corpus ({a.level} lexicon, "
            f"{a.lexicon_vocab} units), 2 CPU cores (5-minute load average at the end: "
            f"{os.getloadavg()[1]:.1f}). Val = held-out documents (en + ru).",
            "",
            f"- first/last train loss: **{result.first_loss:.3f} -> {result.last_loss:.3f}** "
            "nats/symbol; "
            f"val bits/byte {result.val[0]['bpb'] if result.val else float('nan'):.3f} at step "
            f"{result.val[0]['step'] if result.val else '-'} -> **{result.val_bpb:.3f}** "
            "at the end",
            "- reference on the same val windows: a unigram model of the train split "
            "(no context) scores "
            f"{uni_nats:.3f} nats/symbol, {uni_bpb:.3f} bits/byte; a uniform guess "
            f"{math.log(cfg.model.vocab_size):.3f} nats/symbol",
            "- wall time: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
            + f" (total {total:.0f} s); "
            f"{syms / timings['train']:.0f} symbols/s over the run",
            "",
            *rows,
            "",
            f"![core_mini curve]({PLOT.name})",
        ]
    )
    print(text)
    if not a.no_write:
        plot(result.train, result.val, PLOT, (uni_nats, uni_bpb))
        write_section("core_mini_curve", text)
        print(f"wrote {RESULTS} and {PLOT}")


if __name__ == "__main__":
    main()
