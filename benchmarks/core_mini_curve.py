"""The core_mini demo's loss curve: train recipe=core_mini on the embedded demo corpus and write a
table to benchmarks/RESULTS.md (between <!-- core_mini_curve:start/end -->) and a plot to
benchmarks/core_mini_curve.png.

    .venv/bin/python benchmarks/core_mini_curve.py                      # builds lexicon + corpus too
    .venv/bin/python benchmarks/core_mini_curve.py --corpus runs/demo/corpus

Without --corpus it builds what the demo builds (a semantic lexicon of the demo texts, capped at
the mini core's 16384 symbols, then `build_corpus` of the demo files) under runs/bench/core_mini/,
and times each part.
"""

from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
PLOT = HERE / "core_mini_curve.png"
START, END = "<!-- core_mini_curve:start -->", "<!-- core_mini_curve:end -->"


def write_section(text: str) -> None:
    body = f"{START}\n{text.rstrip()}\n{END}"
    old = RESULTS.read_text() if RESULTS.exists() else "# dualmind benchmark results\n"
    if START in old and END in old:
        new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: body, old, flags=re.S)
    else:
        new = old.rstrip() + "\n\n" + body + "\n"
    RESULTS.write_text(new)


def build_demo_corpus(root: Path, vocab: int, level: str) -> tuple[Path, dict]:
    from dualmind.data.corpus import build_corpus
    from dualmind.data.demo import load_demo_texts
    from dualmind.lexicon import Lexicon

    timings = {}
    t = time.perf_counter()
    lex = Lexicon.build(load_demo_texts(), level=level, vocab_size=vocab)
    lex.save(root / "lexicon")
    timings["lexicon"] = time.perf_counter() - t
    t = time.perf_counter()
    build_corpus(None, root / "lexicon", root / "corpus", progress=False, overwrite=True)
    timings["corpus"] = time.perf_counter() - t
    return root / "corpus", timings


def unigram_reference(corpus: Path) -> tuple[float, float]:
    """(nats/symbol, bits/byte) of a unigram model of the train split's symbols: the floor a core
    that ignores context would reach; below it, the core is using context."""
    import numpy as np

    from dualmind.data.shards import ShardSet

    packed = ShardSet.open(corpus, "train").packed_core()
    ids = np.asarray(packed.core)
    q = np.bincount(ids).astype(np.float64)
    q = q[q > 0] / q.sum()
    nats = float(-(q * np.log(q)).sum())
    bytes_per_symbol = float(np.asarray(packed.core_bytes).sum()) / len(ids)
    return nats, nats / np.log(2) / bytes_per_symbol


def plot(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [x["step"] for x in result.train]
    bpb = [x["bpb"] for x in result.train]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, bpb, lw=0.8, alpha=0.5, label="train (per step)")
    window = 10
    smooth = [sum(bpb[max(0, i - window + 1):i + 1]) / len(bpb[max(0, i - window + 1):i + 1])
              for i in range(len(bpb))]
    ax.plot(steps, smooth, lw=1.6, label=f"train ({window}-step mean)")
    if result.val:
        ax.plot([v["step"] for v in result.val], [v["bpb"] for v in result.val], "o-", label="val (held-out docs)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("bits per byte of text")
    ax.set_title("core_mini on the demo corpus (hyper-core, 2 CPU cores)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", help="a built corpus folder (default: build the demo's)")
    p.add_argument("--out", default="runs/bench/core_mini")
    p.add_argument("--lexicon-vocab", type=int, default=16384, help="<= the mini core's vocab_size")
    p.add_argument("--level", default="semantic", choices=["semantic", "lossless"],
                   help="lexicon level (the demo pretrains on the semantic one)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer.max_steps=100")
    a = p.parse_args()

    from dualmind.train_loop import train

    out = Path(a.out)
    timings = {}
    corpus = Path(a.corpus) if a.corpus else None
    if corpus is None:
        corpus, timings = build_demo_corpus(out, a.lexicon_vocab, a.level)
    t = time.perf_counter()
    result = train(["recipe=core_mini", f"data.dir={corpus}", f"run_dir={out / 'run'}",
                    "trainer.enable_progress_bar=false", *a.overrides])
    timings["train"] = time.perf_counter() - t
    print(result.summary())

    from dualmind.config import compose

    cfg = compose(["recipe=core_mini", *a.overrides])
    rows = ["| step | train loss (nats/symbol, 10-step mean) | train bits/byte | val loss | val bits/byte |",
            "|---|---|---|---|---|"]
    val = {v["step"]: v for v in result.val}
    marks = sorted({1, *val, *range(25, result.steps + 1, 25)})
    for s in marks:
        window = [x for x in result.train if s - 10 < x["step"] <= s]
        if not window:
            continue
        loss = sum(x["loss"] for x in window) / len(window)
        bpb = sum(x["bpb"] for x in window) / len(window)
        v = val.get(s)
        rows.append(f"| {s} | {loss:.3f} | {bpb:.3f} | {v['loss']:.3f} | {v['bpb']:.3f} |" if v
                    else f"| {s} | {loss:.3f} | {bpb:.3f} | | |")
    uni_nats, uni_bpb = unigram_reference(corpus)
    total = sum(timings.values())
    syms = sum(1 for _ in result.train) * cfg.data.batch_size * cfg.data.seq_len
    text = "\n".join([
        "## core_mini loss curve (the demo's pretraining)",
        "",
        f"`benchmarks/core_mini_curve.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"recipe core_mini ({cfg.model.dim}x{cfg.model.n_layers} core, vocab {cfg.model.vocab_size}, "
        f"seq {cfg.data.seq_len} x batch {cfg.data.batch_size}, {cfg.trainer.precision}, lr {cfg.optim.lr}) "
        f"on the embedded demo corpus ({a.level} lexicon, {a.lexicon_vocab} units), 2 CPU cores shared "
        "with other work. Val = held-out documents (en + ru).",
        "",
        f"- first/last train loss: **{result.first_loss:.3f} -> {result.last_loss:.3f}** nats/symbol; "
        f"val bits/byte {result.val[0]['bpb'] if result.val else float('nan'):.3f} at step "
        f"{result.val[0]['step'] if result.val else '-'} -> **{result.val_bpb:.3f}** at the end",
        f"- reference: a unigram model of the train split (no context) scores {uni_nats:.3f} nats/symbol, "
        f"{uni_bpb:.3f} bits/byte; a uniform guess {math.log(cfg.model.vocab_size):.3f} nats/symbol",
        f"- wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f" (total {total:.0f} s); "
        f"{syms / timings['train']:.0f} symbols/s over the run",
        "",
        *rows,
        "",
        f"![core_mini curve]({PLOT.name})",
    ])
    print(text)
    if not a.no_write:
        plot(result, PLOT)
        write_section(text)
        print(f"wrote {RESULTS} and {PLOT}")


if __name__ == "__main__":
    main()
