"""Does a core read a short question? The chat's thought is the core's continuation of the
question; a core that gives every question the same next-symbol distribution thinks the same
thought whatever was asked.

    .venv/bin/python benchmarks/question_reading.py runs/demo/lexicon-semantic \
        runs/demo/core_mini/checkpoints/last.ckpt [more core checkpoints ...] \
        [--questions my_questions.txt] [--symbols 20]

For each core: the mean KL divergence (nats) between the next-symbol distributions after every
ordered pair of questions of one language (0: the question is not read at all), beside the mean
entropy of those distributions, and one thought per question (seeded, temperature 0.8, top-k 50:
the bridge's defaults). Questions: one per line in --questions (a line `# lang` starts a group),
else a few English and Russian ones built in. The cores must share the lexicon.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import torch

QUESTIONS = {
    "en": ["What is the night full of?", "Who is the king?", "The queen is dead.",
           "Where is my sword?", "I love thee more than words can say.",
           "Why do you weep, my lord?"],
    "ru": ["Почему мне тревожно перед сном?", "Где ты был вчера вечером?", "Она открыла окно.",
           "Кто пришёл к нам ночью?"],
}


def read_questions(path: Path) -> dict[str, list[str]]:
    """Groups of questions from a file: `# lang` lines start a group, other lines are questions."""
    groups: dict[str, list[str]] = {}
    lang = "all"
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if line.startswith("#"):
            lang = line.lstrip("#").strip() or f"group at line {n}"
        elif line:
            groups.setdefault(lang, []).append(line)
    small = [lang for lang, qs in groups.items() if len(qs) < 2]
    if not groups or small:
        sys.exit(f"error: {path}: each group needs two questions or more "
                 f"({', '.join(small) if small else 'none found'})")
    return groups


def next_symbol_logprobs(core, ids: list[int], vocab: int) -> torch.Tensor:
    with torch.no_grad():
        hidden = core(torch.tensor([ids]), compute_logits=False).hidden
        return core.output(hidden[0, -1]).float().log_softmax(-1)[:vocab]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lexicon", type=Path, help="the cores' lexicon folder")
    parser.add_argument("cores", type=Path, nargs="+", help="core checkpoints (stage core)")
    parser.add_argument("--questions", type=Path, default=None,
                        help="a text file of questions, `# lang` lines between groups")
    parser.add_argument("--symbols", type=int, default=20, help="length of each thought shown")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from dualmind.bridge.prompt import encode_prompt
    from dualmind.bridge.thinking import think
    from dualmind.checkpoint.frozen_core import core_state_from
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    lexicon = Lexicon.load(args.lexicon)
    groups = read_questions(args.questions) if args.questions else QUESTIONS
    for path in args.cores:
        state, meta = core_state_from(path, lexicon.fingerprint)
        core = HyperCore(CoreConfig.from_dict(meta["model"], source=f"{path} metadata")).eval()
        core.load_state_dict(state)
        print(f"{path}:")
        generator = torch.Generator().manual_seed(args.seed)
        for lang, questions in groups.items():
            ids = [encode_prompt(lexicon, q, core.cfg.vocab_size).ids for q in questions]
            logp = [next_symbol_logprobs(core, i, len(lexicon)) for i in ids]
            kl = statistics.mean(float((a.exp() * (a - b)).sum())
                                 for a, b in itertools.permutations(logp, 2))
            entropy = statistics.mean(float(-(p.exp() * p).sum()) for p in logp)
            print(f"  {lang}: {len(questions)} questions, mean pairwise KL {kl:.4f} nats, "
                  f"entropy {entropy:.2f} nats")
            for question, context in zip(questions[:3], ids, strict=False):
                thought = think(core, context, args.symbols, generator=generator,
                                vocab_limit=len(lexicon))
                print(f"    {question} -> {'·'.join(lexicon.gloss(i) for i in thought.ids)}")


if __name__ == "__main__":
    main()
