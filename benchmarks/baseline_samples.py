"""What a plain BPE model says after the demo's prompts: the peer for the chat's answers.

    .venv/bin/python train.py recipe=baseline_bpe_mini data.dir=runs/demo/corpus \
        run_dir=runs/baseline trainer.max_steps=1200 trainer.time_budget_s=530
    .venv/bin/python benchmarks/baseline_samples.py runs/baseline/checkpoints/last.ckpt \
        runs/demo/corpus [more stage-lm checkpoints ...] [--prompts my_prompts.txt]

Each checkpoint (stage lm: the equal-compute study's BPE baseline, a core on the corpus's BPE
tokens) continues each prompt by --tokens tokens with the bridge's sampling defaults
(temperature 0.8, top-k 50), one generator seeded --seed per checkpoint, and the text is printed
as it came. Set its time budget to the demo's core + decoder training time and the continuations
are what an ordinary model makes of the same data in the same time. Prompts: one per line in
--prompts, else the demo chat's three.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

PROMPTS = ["What is the night full of?", "Почему мне тревожно перед сном?", "Who is the king?"]


def load_lm(path: Path):
    """The HyperCore of a stage-lm checkpoint, run folder or export folder, in eval mode, and
    its training step ("?" where the source does not record it)."""
    from dualmind.evaluate.load import read_models
    from dualmind.evaluate.report import EvalError

    try:
        lm, _, meta, _ = read_models(path, stages=("lm",))
    except EvalError as err:
        sys.exit(f"error: {err}")
    step = meta.get("global_step")
    return lm, "?" if step is None else step


def corpus_tokenizer(corpus: Path):
    """The BPE tokenizer of a corpus folder (special-token strings in text stay text)."""
    from dualmind.data.text_tokenizer import load_text_tokenizer

    if not (corpus / "tokenizer.json").is_file():
        sys.exit(f"error: {corpus}: no tokenizer.json (is it a corpus folder?)")
    return load_text_tokenizer(corpus / "tokenizer.json")


def read_prompts(path: Path | None, default: list[str]) -> list[str]:
    """One prompt a non-blank line of `path`; `default` without one."""
    if path is None:
        return default
    prompts = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not prompts:
        sys.exit(f"error: {path}: no prompts")
    return prompts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path,
                        help="a stage-lm checkpoint, run folder or export folder")
    parser.add_argument("corpus", type=Path, help="the corpus it trained on (its tokenizer.json)")
    parser.add_argument("more", type=Path, nargs="*", help="more stage-lm checkpoints")
    parser.add_argument("--prompts", type=Path, default=None, help="one prompt a line")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from dualmind.data.text_tokenizer import BOS

    tokenizer = corpus_tokenizer(args.corpus)
    prompts = read_prompts(args.prompts, PROMPTS)
    for path in [args.checkpoint, *args.more]:
        lm, step = load_lm(path)
        print(f"{path} (step {step}):")
        generator = torch.Generator().manual_seed(args.seed)
        for prompt in prompts:
            # after a BOS, as every record the model trained on began
            ids = torch.tensor([[BOS, *tokenizer.encode(prompt).ids]])
            with torch.no_grad():
                out = lm.generate(ids, args.tokens, temperature=0.8, top_k=50, generator=generator)
            print(f"  {prompt} -> {tokenizer.decode(out.ids[0, ids.shape[1]:].tolist())!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
