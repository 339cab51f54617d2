"""Do the bridge's answers read as language? Their word order, scored by a BPE model.

    .venv/bin/python train.py recipe=baseline_bpe_mini data.dir=runs/demo/corpus \
        run_dir=runs/baseline trainer.max_steps=1200
    .venv/bin/python benchmarks/chat_fluency.py runs/demo/bridge \
        runs/baseline/checkpoints/last.ckpt runs/demo/corpus [more bridges ...] \
        [--peer another_lm.ckpt] [--renders 24] [--prompts my_prompts.txt]

A reference language model (stage lm, trained on the corpus's BPE tokens: the equal-compute
study's baseline) scores each text in bits per byte twice: as written, and with its words put in
random orders. The difference, the *order gain*, is what the text's word order is worth to a
model that knows the language: word salad gains nothing whatever its words, so frequent words
alone cannot flatter it. Every text is cut to one length (--chars; default the lower quartile of
the answers' lengths), and one that falls short of 80% of it or of 4 words is counted and left
out: a shorter text gives the reference less context for its order. Lines:

- held-out scenes of the corpus's val split (--lang, --snippets of them spread over the split):
  what language gains under this reference;
- each bridge's answers: every prompt answered alone (no chat history), --draws times, seeded;
- --peer: a plain BPE model's continuations of the same prompts (never the reference itself,
  which would score its own text);
- --renders N: each bridge's decoder saying N held-out scenes from their own units, sampled as
  the answers are: the answers with the text's thought in place of the core's, so the two lines
  part where the core's thinking is to blame and meet where the decoder's saying is.

Standard errors are over prompts (a prompt's draws are one group) or scenes.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from baseline_samples import corpus_tokenizer, load_lm, read_prompts

MIN_WORDS = 4  # a text of fewer words is left out (counted): a shuffle of three says little
PROMPTS = [
    "What is the night full of?", "Who is the king?", "Where is my father?", "Why do you weep?",
    "What did the queen say?", "Is love a tender thing?", "Tell me of the war.",
    "What is your name?", "Who comes here?", "What news from the court?", "Will you marry me?",
    "Where shall we meet tonight?",
]


class Reference:
    """A stage-lm model and the corpus's tokenizer: bits per byte of a text, and of the text's
    words shuffled (seeded, so every run shuffles alike)."""

    def __init__(self, lm, tokenizer, bos: int, max_tokens: int):
        self.lm, self.tokenizer, self.bos, self.max_tokens = lm, tokenizer, bos, max_tokens

    @torch.no_grad()
    def bits_per_byte(self, text: str) -> float:
        ids = self.tokenizer.encode(text).ids[: self.max_tokens - 1]
        if not ids:
            raise ValueError(f"nothing to score in {text!r}")
        seq = torch.tensor([[self.bos, *ids]])
        logits = self.lm(seq[:, :-1]).logits[0].float()
        nll = torch.nn.functional.cross_entropy(logits, seq[0, 1:], reduction="sum").item()
        return nll / math.log(2) / len(self.tokenizer.decode(ids).encode("utf-8"))

    def order_gain(self, texts: list[tuple[int, str]], seed: int = 0, shuffles: int = 5
                   ) -> Gain:
        """Each (group, text)'s bits per byte as written and with its words shuffled (the mean
        over `shuffles` orders)."""
        rng = random.Random(seed)
        gain = Gain()
        for group, text in texts:
            orders = []
            for _ in range(shuffles):
                words = text.split()
                rng.shuffle(words)
                orders.append(self.bits_per_byte(" ".join(words)))
            gain.add(group, self.bits_per_byte(text), sum(orders) / shuffles)
        return gain


@dataclass
class Gain:
    """Bits per byte as written and shuffled, per text, with the group each text belongs to
    (a prompt's draws are one group: they are not independent). Mean and standard error are
    taken over the groups' means."""

    groups: list[int] = field(default_factory=list)
    written: list[float] = field(default_factory=list)
    shuffled: list[float] = field(default_factory=list)

    def add(self, group: int, written: float, shuffled: float) -> None:
        self.groups.append(group)
        self.written.append(written)
        self.shuffled.append(shuffled)

    def _by_group(self) -> list[float]:
        by: dict[int, list[float]] = {}
        for g, a, b in zip(self.groups, self.written, self.shuffled, strict=True):
            by.setdefault(g, []).append(b - a)
        return [statistics.fmean(v) for v in by.values()]

    @property
    def mean(self) -> float:
        return statistics.fmean(self._by_group())

    @property
    def stderr(self) -> float:
        means = self._by_group()
        return statistics.stdev(means) / math.sqrt(len(means)) if len(means) > 1 else math.nan

    def share_of(self, peer: Gain) -> str:
        """This gain as a share of `peer`'s, ± one standard error (both errors, first order)."""
        if peer.mean <= 0:
            return "-"
        share = self.mean / peer.mean
        error = abs(share) * math.hypot(self.stderr / self.mean if self.mean else 0.0,
                                        peer.stderr / peer.mean)
        return f"{share:.0%} ± {error:.0%}"

    def row(self, what: str, peer: Gain | None = None) -> str:
        share = self.share_of(peer) if peer is not None else "-"
        return (f"| {what} | {len(self.written)} ({len(set(self.groups))}) | "
                f"{statistics.fmean(self.written):.3f} | {statistics.fmean(self.shuffled):.3f} | "
                f"**{self.mean:.3f}** ± {self.stderr:.3f} | {share} |")


def open_val(corpus: Path):
    """The corpus's val split, opened once for the held-out scenes and the renders."""
    from dualmind.data.open_corpus import DataConfigError, open_shards

    try:
        return open_shards(corpus, "val", None)
    except DataConfigError as err:
        sys.exit(f"error: {corpus}: {err}")


def scene_sample(shards, lang: str, count: int) -> list[int]:
    """`count` val-split scenes in `lang`, spread evenly over the split (the first ones would
    come from one or two documents)."""
    mine = [i for i in range(len(shards)) if getattr(shards[i], "lang", lang) == lang]
    if not mine:
        sys.exit(f"error: {shards.tokenizer_path.parent}: no val scenes in {lang!r}")
    step = max(1, len(mine) // count)
    return mine[::step][:count]


def held_out_texts(shards, tokenizer, records: list[int]) -> list[str]:
    """The text of these val-split scenes, whitespace folded."""
    return [" ".join(tokenizer.decode([int(t) for t in shards[i].text],
                                      skip_special_tokens=True).split()) for i in records]


def load_bridge(bridge_dir: Path):
    from dualmind.bridge.bridge import Bridge
    from dualmind.bridge.errors import BridgeError

    try:
        return Bridge.from_pretrained(bridge_dir)
    except BridgeError as err:
        sys.exit(f"error: {bridge_dir}: {err}")


def answers(bridge, prompts: list[str], args) -> list[tuple[int, str]]:
    """(prompt index, answer): each prompt answered `args.draws` times, alone (no chat
    history), draw j of prompt i seeded seed + i + j * len(prompts)."""
    said = []
    for j in range(args.draws):
        for i, prompt in enumerate(prompts):
            answer = bridge.generate(prompt, max_symbols=args.max_symbols,
                                     temperature=args.temperature, top_k=args.top_k or None,
                                     render_temperature=args.render_temperature,
                                     seed=args.seed + i + j * len(prompts))
            said.append((i, " ".join(answer.text.split())))
    return said


def renders(bridge, bridge_dir: Path, corpus: Path, records: list[int], args
            ) -> list[tuple[int, str]]:
    """(record, rendering): the bridge's decoder saying these val scenes from their own units,
    sampled as the answers are (temperature, top-k, seed per scene), up to --render-tokens: the
    answers' peer with the text's own thought, so what parts the two lines is the core's
    thinking."""
    from dualmind.evaluate.render import render_scenes

    said = []
    for r in records:  # one at a time: render_scenes adds a control per scene when given two
        out = render_scenes(bridge.core, bridge.decoder, corpus, "val", records=[r],
                            lexicon_dir=bridge_dir / "lexicon", max_new_tokens=args.render_tokens,
                            temperature=say_temperature(args), top_k=args.top_k or None,
                            seed=args.seed)
        said.append((r, " ".join(out[0].rendered.split())))
    return said


def say_temperature(args) -> float:
    """The decoder's temperature: --render-temperature, else --temperature."""
    return args.temperature if args.render_temperature is None else args.render_temperature


def cut(text: str, chars: int) -> str:
    """`text` cut to at most `chars` characters, at a word boundary where there is one."""
    if len(text) <= chars:
        return text
    head = text[: chars + 1]  # a word ending exactly at `chars` is kept whole
    return head.rsplit(" ", 1)[0] if " " in head else text[:chars]


def comparable(texts: list[tuple[int, str]], chars: int) -> tuple[list[tuple[int, str]], int]:
    """The texts cut to `chars`, and those that compare: MIN_WORDS words or more (a shuffle of
    fewer says little) and at least 80% of `chars` (a shorter text gives the reference less
    context for its order). Returns them and how many were left out."""
    out = [(g, cut(t, chars)) for g, t in texts]
    kept = [(g, t) for g, t in out if len(t.split()) >= MIN_WORDS and len(t) >= 0.8 * chars]
    return kept, len(out) - len(kept)


def continuations(checkpoint: Path, prompts: list[str], tokenizer, args
                  ) -> list[tuple[int, str]]:
    """(prompt index, text): what a plain BPE model (stage lm) writes after each prompt, drawn
    as `answers` draws: the peer an ordinary model of the same data sets for the bridge."""
    from dualmind.data.text_tokenizer import BOS, EOS

    lm, _ = load_lm(checkpoint)
    check_vocabulary(lm, tokenizer, checkpoint, args.corpus)
    said = []
    for j in range(args.draws):
        for i, prompt in enumerate(prompts):
            ids = torch.tensor([[BOS, *tokenizer.encode(prompt).ids]])
            generator = torch.Generator().manual_seed(args.seed + i + j * len(prompts))
            with torch.no_grad():
                out = lm.generate(ids, args.peer_tokens, temperature=args.temperature,
                                  top_k=args.top_k or None, eos_id=EOS, generator=generator)
            new = [int(t) for t in out.ids[0, ids.shape[1]:]]
            new = new[: new.index(EOS)] if EOS in new else new
            said.append((i, " ".join(tokenizer.decode(new).split())))
    return said


def check_vocabulary(lm, tokenizer, checkpoint: Path, corpus: Path) -> None:
    if lm.cfg.vocab_size != tokenizer.get_vocab_size():
        sys.exit(f"error: {checkpoint}: a vocabulary of {lm.cfg.vocab_size} tokens, "
                 f"{corpus / 'tokenizer.json'} has {tokenizer.get_vocab_size()}: not its "
                 "tokenizer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bridge", type=Path, help="a bridge folder (Bridge.save; make demo's)")
    parser.add_argument("reference", type=Path,
                        help="a stage-lm checkpoint (or its run or export folder) on the "
                             "corpus's BPE")
    parser.add_argument("corpus", type=Path, help="the corpus: its tokenizer and val split")
    parser.add_argument("more", type=Path, nargs="*", help="more bridges, scored alike")
    parser.add_argument("--peer", type=Path, action="append", default=[],
                        help="a stage-lm checkpoint whose continuations of the prompts are "
                             "scored alike (repeatable; not the reference: it would score its "
                             "own text)")
    parser.add_argument("--chars", type=int, default=0,
                        help="cut every text to this many characters (default: the lower "
                             "quartile of the answers' lengths, at least 40)")
    parser.add_argument("--peer-tokens", type=int, default=40,
                        help="tokens a peer writes after each prompt")
    parser.add_argument("--render-tokens", type=int, default=80,
                        help="tokens a render may say")
    parser.add_argument("--renders", type=int, default=0,
                        help="also score each bridge's renders of this many held-out scenes "
                             "(from their own units: the text's thought instead of the core's)")
    parser.add_argument("--prompts", type=Path, default=None, help="one prompt a line")
    parser.add_argument("--lang", default="en", help="the held-out scenes' language (default en)")
    parser.add_argument("--snippets", type=int, default=40, help="held-out scenes scored")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--render-temperature", type=float, default=None,
                        help="the decoder's temperature when it says a thought or a held-out "
                             "scene (default: --temperature; 0 = greedy)")
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--max-symbols", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shuffles", type=int, default=5, help="word orders drawn per text")
    parser.add_argument("--draws", type=int, default=3, help="answers drawn per prompt")
    parser.add_argument("--show", type=int, default=3, help="answers printed per bridge")
    args = parser.parse_args(argv)
    if args.chars < 0 or args.renders < 0:
        parser.error(f"--chars and --renders must be >= 0, got {args.chars}, {args.renders}")
    if min(args.shuffles, args.snippets, args.draws, args.peer_tokens, args.render_tokens) < 1:
        parser.error("--shuffles, --snippets, --draws, --peer-tokens and --render-tokens must "
                     "be >= 1")

    from dualmind.data.text_tokenizer import BOS

    tok = corpus_tokenizer(args.corpus)
    lm, step = load_lm(args.reference)
    check_vocabulary(lm, tok, args.reference, args.corpus)
    reference = Reference(lm, tok, BOS, lm.cfg.max_seq_len)
    prompts = read_prompts(args.prompts, PROMPTS)
    if any(p.resolve() == args.reference.resolve() for p in args.peer):
        sys.exit(f"error: {args.reference} is the reference: a peer scored by itself flatters it")

    bridges = {path: load_bridge(path) for path in [args.bridge, *args.more]}
    said = {f"answers of {path}": answers(bridge, prompts, args)
            for path, bridge in bridges.items()}
    # One length for every text: a longer text gives the reference more context for its order,
    # so lines of different lengths would not compare. Default: the answers' lower quartile, so
    # that most answers reach it; a text that falls short of it is left out and counted.
    lengths = sorted(len(t) for texts in said.values() for _, t in texts)
    chars = args.chars or max(40, lengths[len(lengths) // 4])
    said |= {f"continuations of {path}": continuations(path, prompts, tok, args)
             for path in args.peer}
    val = open_val(args.corpus)
    if args.renders:
        rendered = scene_sample(val, args.lang, args.renders)
        said |= {f"renders of {path}": renders(bridge, path, args.corpus, rendered, args)
                 for path, bridge in bridges.items()}
    scenes = scene_sample(val, args.lang, args.snippets)
    held_out = list(zip(scenes, held_out_texts(val, tok, scenes), strict=True))
    lines = {f"held-out scenes ({args.lang})": held_out} | said
    print(f"reference: {args.reference} (step {step}); {len(prompts)} prompts x {args.draws} "
          f"draws, temperature {args.temperature} (saying: {say_temperature(args)}), top-k "
          f"{args.top_k}; every text cut to "
          f"{chars} characters, those under {MIN_WORDS} words or 80% of that left out; each "
          f"text's words shuffled {args.shuffles} times; ± one standard error over the prompts "
          "(answers, continuations) or scenes\n")
    print("| text | texts (groups) | bits/byte as written | words shuffled | **order gain** | "
          "of the held-out text's |")
    print("|---|---|---|---|---|---|")
    language = None
    for what, texts in lines.items():
        kept, left = comparable(texts, chars)
        note = f" ({left} of {len(texts)} too short, left out)" if left else ""
        if not kept:
            print(f"| {what}{note} | 0 | - | - | - | - |")
            continue
        gain = reference.order_gain(kept, args.seed, args.shuffles)
        print(gain.row(f"{what}{note}", language))
        language = language or gain
    for what, texts in said.items():
        print(f"\n{what}:")
        for group, text in texts[: args.show]:
            asked = prompts[group] if what.startswith(("answers", "continuations")) else (
                f"(held-out scene {group})")
            print(f"  {asked} -> {text}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
