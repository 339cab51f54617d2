"""Does a core read a short question? The chat's thought is the core's continuation of the
question; a core that gives every question the same next-symbol distribution thinks the same
thought whatever was asked.

    .venv/bin/python benchmarks/question_reading.py runs/demo/lexicon-semantic \
        runs/demo/core_mini/checkpoints/last.ckpt [more core checkpoints ...] \
        [--questions my_questions.txt] [--symbols 20] \
        [--corpus runs/demo/corpus [--peer-lm runs/baseline]]

For each core: the mean KL divergence (nats) between the next-symbol distributions after every
ordered pair of questions of one language (0: the question is not read at all), beside the mean
entropy of those distributions, and one thought per question (seeded, temperature 0.8, top-k 50:
the bridge's defaults). With --corpus, also whether it reads its own scenes (scene_reading),
beside a peer that reads only the symbol before: a bigram counted on the corpus's train split,
and how far back it reads: both code lengths by the predicted symbol's position in its scene (a
core that reads only the last symbol or two gains nothing after the first buckets); --peer-lm:
the same for a plain BPE model on the same scenes' text.
Questions: one per line in --questions (a line `# lang` starts a group), else a few English and
Russian ones built in. The cores must share the lexicon.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
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


class CountedBigram:
    """A bigram model counted on a split, interpolated with its unigram (Witten-Bell: a context
    seen with t distinct followers in c pairs keeps c / (c + t) of its mass for them), the
    unigram add-half smoothed: the peer a core that reads should beat, from the same symbols."""

    def __init__(self, sequences: list[np.ndarray], vocab: int):
        pairs = np.concatenate([s[:-1].astype(np.int64) * vocab + s[1:] for s in sequences])
        self.vocab = vocab
        self.codes, self.pair_counts = np.unique(pairs, return_counts=True)
        first = self.codes // vocab
        self.context = np.bincount(first, weights=self.pair_counts, minlength=vocab)
        self.followers = np.bincount(first, minlength=vocab).astype(np.float64)
        unigram = np.bincount(np.concatenate(sequences), minlength=vocab) + 0.5
        self.unigram = unigram / unigram.sum()

    def probs(self, prev: np.ndarray, nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(nxt | prev) under the bigram and P(nxt) under the unigram, per pair."""
        codes = prev.astype(np.int64) * self.vocab + nxt
        at = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        count = np.where(self.codes[at] == codes, self.pair_counts[at], 0)
        c, t = self.context[prev], self.followers[prev]
        seen = c / np.maximum(c + t, 1)
        bigram = seen * count / np.maximum(c, 1) + (1 - seen) * self.unigram[nxt]
        return bigram, self.unigram[nxt]


def counted_on_train(corpus: Path, vocab: int) -> CountedBigram:
    """The peer, counted once on the corpus's train split (every core of a run shares it)."""
    from dualmind.data.open_corpus import open_shards

    train = open_shards(corpus, "train", None)
    return CountedBigram([np.asarray(train[i].core) for i in range(len(train))], vocab)


# Where in its scene a predicted symbol sits (1 = the second symbol, after one symbol read):
# a core that reads only the last symbol or two gains nothing in the later buckets.
POSITION_BUCKETS = ((1, 1), (2, 4), (5, 16), (17, 64), (65, None))


def scene_logprobs(core, ids: torch.Tensor) -> torch.Tensor:
    """Log next-symbol distributions at every position of one scene [1, T] -> [T, V], through
    the core's head (its composed rows when the core has unit pieces)."""
    with torch.no_grad():
        return core.head(core(ids, compute_logits=False).hidden[0]).float().log_softmax(-1)


def by_position(costs: list[np.ndarray]) -> list[float]:
    """The mean of per-symbol costs (one array per scene, entry j = the symbol at position j +
    1) in each of POSITION_BUCKETS; nan for a bucket no scene reaches."""
    means = []
    for first, last in POSITION_BUCKETS:
        parts = [c[first - 1: last] for c in costs]
        values = np.concatenate(parts) if parts else np.zeros(0)
        means.append(float(values.mean()) if len(values) else float("nan"))
    return means


def bucket_name(first: int, last: int | None) -> str:
    return f"{first}" if first == last else f"{first}-{last}" if last else f"{first}+"


def scene_reading(core, corpus: Path, scenes: int, window: int, peer: CountedBigram) -> str:
    """Whether the core reads the scene it is in: the mean KL divergence of each position's
    next-symbol distribution from the mean of its scene's, and the code length of the next
    symbols under each (equal: the core is a unigram model of the scene, whatever it read),
    beside ``peer``: a bigram and a unigram counted on the corpus's train split; then how far
    back it reads: its code length and the bigram's by the predicted symbol's position."""
    from dualmind.data.open_corpus import open_shards

    shards = open_shards(corpus, "val", None)
    kls, own, flat, bigram, unigram = [], [], [], [], []
    for i in range(min(scenes, len(shards))):
        ids = torch.as_tensor(shards[i].core[:window], dtype=torch.int64)[None]
        logp = scene_logprobs(core, ids)
        mean = logp.exp().mean(0).log()
        kls.append(float((logp.exp() * (logp - mean)).sum(-1).mean()))
        nxt = ids[0, 1:, None]
        own.append(-logp[:-1].gather(1, nxt)[:, 0].numpy())
        flat.append(-mean.expand(len(nxt), -1).gather(1, nxt)[:, 0].numpy())
        pb, pu = peer.probs(ids[0, :-1].numpy(), ids[0, 1:].numpy())
        bigram.append(-np.log(pb))
        unigram.append(-np.log(pu))
    every = [float(np.concatenate(c).mean()) for c in (own, flat, bigram, unigram)]
    positions = "; ".join(
        f"{bucket_name(*b)}: {o:.3f} vs {g:.3f}"
        for b, o, g in zip(POSITION_BUCKETS, by_position(own), by_position(bigram), strict=True))
    return (f"scenes: KL(position || scene mean) {statistics.mean(kls):.3f} nats; next symbols "
            f"{every[0]:.3f} nats each, {every[1]:.3f} under the scene's mean distribution; "
            f"counted on the train split: bigram {every[2]:.3f}, unigram {every[3]:.3f} "
            f"({len(kls)} val scenes, {window} symbols each)\n"
            f"  by position in the scene, core vs counted bigram (nats a symbol): {positions}")


def lm_reading(lm, corpus: Path, scenes: int, window: int) -> str:
    """How far back a plain BPE model (stage lm) reads the same val scenes' text: its code
    length by the predicted token's position, read after a BOS as it trained (the first token,
    read from the BOS alone, is left out as the core's first symbol is), and the bytes a token
    against a unit, so the positions compare in text."""
    from dualmind.data.open_corpus import open_shards
    from dualmind.data.text_tokenizer import BOS

    shards = open_shards(corpus, "val", None)
    costs, tokens, units, n_bytes = [], 0, 0, 0
    for i in range(min(scenes, len(shards))):
        record = shards[i]
        text = torch.as_tensor(np.asarray(record.text[:window]), dtype=torch.int64)
        ids = torch.cat([torch.tensor([BOS]), text])[None]
        with torch.no_grad():
            logp = lm(ids[:, :-1]).logits[0].float().log_softmax(-1)
        costs.append(-logp[1:].gather(1, ids[0, 2:, None])[:, 0].numpy())
        tokens, units, n_bytes = tokens + len(record.text), units + len(record.core), \
            n_bytes + record.n_bytes
    positions = "; ".join(f"{bucket_name(*b)}: {c:.3f}"
                          for b, c in zip(POSITION_BUCKETS, by_position(costs), strict=True))
    return (f"by position in the scene (nats a token): {positions} ({len(costs)} val scenes, "
            f"{window} tokens each; {n_bytes / tokens:.2f} bytes a token, "
            f"{n_bytes / units:.2f} a core symbol)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lexicon", type=Path, help="the cores' lexicon folder")
    parser.add_argument("cores", type=Path, nargs="+", help="core checkpoints (stage core)")
    parser.add_argument("--questions", type=Path, default=None,
                        help="a text file of questions, `# lang` lines between groups")
    parser.add_argument("--symbols", type=int, default=20, help="length of each thought shown")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=Path, default=None,
                        help="a corpus folder: also whether the core reads its own scenes (the "
                             "first --scenes val scenes, --window symbols each)")
    parser.add_argument("--scenes", type=int, default=32,
                        help="val scenes read (default 32; RESULTS before 2026-12-04: 4)")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--peer-lm", type=Path, action="append", default=[],
                        help="with --corpus: a plain BPE model (stage lm checkpoint or run "
                             "folder) on the corpus's tokens, read by position on the same scenes")
    args = parser.parse_args(argv)
    if args.peer_lm and args.corpus is None:
        sys.exit("error: --peer-lm reads the scenes of --corpus: give --corpus too")

    from baseline_samples import load_lm  # beside this script, as chat_fluency reads it

    from dualmind.bridge.prompt import encode_prompt
    from dualmind.bridge.thinking import next_symbol_logprobs, reading_kl, think
    from dualmind.checkpoint.frozen_core import core_state_from
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    lexicon = Lexicon.load(args.lexicon)
    groups = read_questions(args.questions) if args.questions else QUESTIONS
    peers: dict[int, CountedBigram] = {}  # by vocabulary size, the one thing a core changes
    for path in args.cores:
        state, meta = core_state_from(path, lexicon.fingerprint)
        core = HyperCore(CoreConfig.from_dict(meta["model"], source=f"{path} metadata")).eval()
        core.load_state_dict(state)
        print(f"{path}:")
        if args.corpus is not None:
            vocab = core.cfg.vocab_size
            if vocab not in peers:
                peers[vocab] = counted_on_train(args.corpus, vocab)
            print("  " + scene_reading(core, args.corpus, args.scenes, args.window, peers[vocab]))
        generator = torch.Generator().manual_seed(args.seed)
        for lang, questions in groups.items():
            ids = [encode_prompt(lexicon, q, core.cfg.vocab_size).ids for q in questions]
            kl = reading_kl(core, ids, len(lexicon))
            entropy = statistics.mean(float(-(p.exp() * p).sum()) for p in (
                next_symbol_logprobs(core, i, len(lexicon)) for i in ids))
            print(f"  {lang}: {len(questions)} questions, mean pairwise KL {kl:.4f} nats, "
                  f"entropy {entropy:.2f} nats")
            for question, context in zip(questions[:3], ids, strict=False):
                thought = think(core, context, args.symbols, generator=generator,
                                vocab_limit=len(lexicon))
                print(f"    {question} -> {'·'.join(lexicon.gloss(i) for i in thought.ids)}")
    for path in args.peer_lm:
        lm, step = load_lm(path)
        print(f"{path} (BPE model, step {step}):")
        print("  " + lm_reading(lm, args.corpus, args.scenes, args.window))


if __name__ == "__main__":
    main()
