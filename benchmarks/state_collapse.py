"""How alike are the core's states? 1 - mean cosine between held-out positions, per layer.

A decoder can only take from the core what tells its positions apart. This measures, for each
core checkpoint given (and an untrained core of the same shape), on the held-out split:

    layer 0 (symbol embeddings), each block's output, the final-norm states, and the final
    states centred per scene: 1 - mean pairwise cosine over a sample of positions

    .venv/bin/python benchmarks/state_collapse.py --corpus runs/demo/corpus \\
        runs/demo/core_mini/checkpoints/step0000100.ckpt runs/demo/core_mini/checkpoints/last.ckpt

Writes benchmarks/RESULTS.md, section state_collapse (unless --no-write).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_md import write_section  # noqa: E402 - benchmarks/ on the path first


def spread(states: torch.Tensor, sample: torch.Tensor) -> float:
    """1 - mean cosine over all pairs of the sampled rows of states [N, D]."""
    x = torch.nn.functional.normalize(states[sample].float(), dim=-1)
    n = x.shape[0]
    cos = (x @ x.T).sum() - n  # off-diagonal sum
    return float(1 - cos / (n * (n - 1)))


def measure(core, corpus: Path, rows: int, positions: int, seed: int = 0) -> dict[str, float]:
    from dualmind.data.open_corpus import open_shards
    from dualmind.model.core_reading import centre
    from dualmind.train.align import core_doc_ids
    from dualmind.train.align_datamodule import AlignPacks, collate_aligned

    shards = open_shards(corpus, "val")
    packs = AlignPacks(shards, core.cfg.max_seq_len, 1 << 20, 1, 2)
    batch = collate_aligned([packs[i] for i in range(min(rows, len(packs)))])
    a = batch["alignment"]
    with torch.no_grad():
        out = core(batch["core_ids"], doc_ids=core_doc_ids(a.core_doc), compute_logits=False,
                   return_hidden_states=True)
    real = (a.core_doc >= 0).flatten()
    scenes = a.core_scene_groups()
    layers = {f"layer {i}" if i else "layer 0 (embeddings)": h
              for i, h in enumerate(out.hidden_states)}
    layers["final (normed)"] = out.hidden
    layers["final, centred per scene"] = centre(out.hidden, scenes)
    n = int(real.sum())
    gen = torch.Generator().manual_seed(seed)
    sample = torch.randperm(n, generator=gen)[:positions]
    return {name: spread(h.flatten(0, 1)[real], sample) for name, h in layers.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", type=Path, help="stage-core checkpoints, in order")
    p.add_argument("--corpus", type=Path, action="append", required=True,
                   help="the corpus they trained on; once for all, or once per checkpoint")
    p.add_argument("--rows", type=int, default=16, help="held-out rows read")
    p.add_argument("--positions", type=int, default=2000, help="positions sampled")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    corpora = args.corpus * len(args.checkpoints) if len(args.corpus) == 1 else args.corpus
    if len(corpora) != len(args.checkpoints):
        p.error(f"{len(args.corpus)} --corpus for {len(args.checkpoints)} checkpoints: give one, "
                "or one per checkpoint")
    from dualmind.evaluate.load import read_models
    from dualmind.model.core import HyperCore

    results = {}
    for ckpt, corpus in zip(args.checkpoints, corpora, strict=True):
        core = read_models(ckpt, stages=None)[0]
        core.eval()
        if not results:  # the same shape untrained: what training did to the spread
            torch.manual_seed(0)
            results[f"untrained, on {corpus.name}"] = measure(
                HyperCore(core.cfg).eval(), corpus, args.rows, args.positions)
        results[f"{'/'.join(ckpt.parts[-3:])} on {corpus.name}"] = measure(
            core, corpus, args.rows, args.positions)
    names = list(next(iter(results.values())))
    lines = [f"1 - mean cosine between {args.positions} sampled held-out positions, per layer "
             "(0: every state points one way; ~1: unrelated directions). Command: "
             "`.venv/bin/python benchmarks/state_collapse.py "
             + " ".join(f"--corpus {c}" for c in args.corpus) + " "
             + " ".join(str(c) for c in args.checkpoints) + "`.", "",
             "| core | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, row in results.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[n]:.2e}" for n in names) + " |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("state_collapse", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
