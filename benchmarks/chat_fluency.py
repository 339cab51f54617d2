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
alone cannot flatter it. Lines, every text cut to one length (--chars; default the answers'
mean length):

- held-out scenes of the corpus's val split (--lang): what language gains under this reference;
- each bridge's answers: every prompt answered alone (no chat history), --draws times, seeded;
- --peer: a plain BPE model's continuations of the same prompts (never the reference itself,
  which would score its own text);
- --renders N: each bridge's decoder saying N held-out scenes from their own units (greedy):
  the answers with the text's thought in place of the core's, so the two lines part where the
  core's thinking is to blame and meet where the decoder's saying is.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from baseline_samples import corpus_tokenizer, load_lm, read_prompts

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

    def order_gain(self, texts: list[str], seed: int = 0, shuffles: int = 5) -> Gain:
        """Each text's bits per byte as written and with its words shuffled (the mean over
        `shuffles` orders)."""
        rng = random.Random(seed)
        written, shuffled = [], []
        for text in texts:
            written.append(self.bits_per_byte(text))
            orders = []
            for _ in range(shuffles):
                words = text.split()
                rng.shuffle(words)
                orders.append(self.bits_per_byte(" ".join(words)))
            shuffled.append(sum(orders) / shuffles)
        return Gain(written, shuffled)


@dataclass
class Gain:
    """Per text: bits per byte as written and shuffled; the gain's mean and standard error."""

    written: list[float]
    shuffled: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(b - a for a, b in zip(self.written, self.shuffled, strict=True))

    @property
    def stderr(self) -> float:
        gains = [b - a for a, b in zip(self.written, self.shuffled, strict=True)]
        return statistics.stdev(gains) / math.sqrt(len(gains)) if len(gains) > 1 else math.nan

    def row(self, what: str, peer: Gain | None = None) -> str:
        share = f"{self.mean / peer.mean:.0%}" if peer is not None and peer.mean > 0 else "-"
        return (f"| {what} | {len(self.written)} | {statistics.fmean(self.written):.3f} | "
                f"{statistics.fmean(self.shuffled):.3f} | **{self.mean:.3f}** ± "
                f"{self.stderr:.3f} | {share} |")


def held_out_snippets(corpus: Path, lang: str, count: int, chars: int) -> list[str]:
    """The first `count` val-split scenes in `lang`, each cut to `chars` characters at a word."""
    from dualmind.data.open_corpus import open_shards
    from dualmind.data.text_tokenizer import load_text_tokenizer

    shards = open_shards(corpus, "val", None)
    tok = load_text_tokenizer(shards.tokenizer_path)
    out = []
    for i in range(len(shards)):
        scene = shards[i]
        if getattr(scene, "lang", lang) != lang:
            continue
        text = " ".join(tok.decode([int(t) for t in scene.text], skip_special_tokens=True).split())
        snippet = cut(text, chars)
        if len(snippet.split()) >= 4:  # a shuffle of fewer words says little
            out.append(snippet)
        if len(out) == count:
            break
    if not out:
        sys.exit(f"error: {corpus}: no val scenes in {lang!r} with 4 words or more")
    return out


def answers(bridge_dir: Path, prompts: list[str], args) -> list[str]:
    """Each prompt answered `args.draws` times, alone (no chat history), draw j of prompt i
    seeded seed + i + j * len(prompts)."""
    from dualmind.bridge.bridge import Bridge

    bridge = Bridge.from_pretrained(bridge_dir)
    said = []
    for j in range(args.draws):
        for i, prompt in enumerate(prompts):
            answer = bridge.generate(prompt, max_symbols=args.max_symbols,
                                     temperature=args.temperature, top_k=args.top_k or None,
                                     seed=args.seed + i + j * len(prompts))
            said.append(" ".join(answer.text.split()))
    return said


def renders(bridge_dir: Path, corpus: Path, lang: str, count: int, tokens: int) -> list[str]:
    """The bridge's decoder saying the first `count` val scenes in `lang` from their own units
    (greedy, up to `tokens` tokens, as `dualmind eval` renders): the answers' peer with a
    thought that is the text's own, so what separates the two lines is the core's thinking."""
    from dualmind.bridge.bridge import Bridge
    from dualmind.data.open_corpus import open_shards
    from dualmind.evaluate.render import render_scenes

    bridge = Bridge.from_pretrained(bridge_dir)
    shards = open_shards(corpus, "val", None)
    records = [i for i in range(len(shards)) if getattr(shards[i], "lang", lang) == lang][:count]
    if not records:
        sys.exit(f"error: {corpus}: no val scenes in {lang!r} to render")
    said = render_scenes(bridge.core, bridge.decoder, corpus, "val", records=records,
                         lexicon_dir=bridge_dir / "lexicon", max_new_tokens=tokens)
    return [" ".join(r.rendered.split()) for r in said]


def cut(text: str, chars: int) -> str:
    """`text` cut to `chars` characters at a word boundary."""
    return text[:chars].rsplit(" ", 1)[0] if len(text) > chars else text


def continuations(checkpoint: Path, prompts: list[str], tokenizer, args) -> list[str]:
    """What a plain BPE model (stage lm) writes after each prompt, drawn as `answers` draws:
    the peer an ordinary model of the same data sets for the bridge."""
    from dualmind.data.text_tokenizer import BOS, EOS

    lm, _ = load_lm(checkpoint)
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
            said.append(" ".join(tokenizer.decode(new).split()))
    return said


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bridge", type=Path, help="a bridge folder (Bridge.save; make demo's)")
    parser.add_argument("reference", type=Path, help="a stage-lm checkpoint on the corpus's BPE")
    parser.add_argument("corpus", type=Path, help="the corpus: its tokenizer and val split")
    parser.add_argument("more", type=Path, nargs="*", help="more bridges, scored alike")
    parser.add_argument("--peer", type=Path, action="append", default=[],
                        help="a stage-lm checkpoint whose continuations of the prompts are "
                             "scored alike (repeatable; not the reference: it would score its "
                             "own text)")
    parser.add_argument("--chars", type=int, default=0,
                        help="cut every text to this many characters (default: the answers' "
                             "mean length)")
    parser.add_argument("--peer-tokens", type=int, default=40,
                        help="tokens a peer writes after each prompt")
    parser.add_argument("--renders", type=int, default=0,
                        help="also score each bridge's renders of this many held-out scenes "
                             "(from their own units: the text's thought instead of the core's)")
    parser.add_argument("--prompts", type=Path, default=None, help="one prompt a line")
    parser.add_argument("--lang", default="en", help="the held-out scenes' language (default en)")
    parser.add_argument("--snippets", type=int, default=40, help="held-out scenes scored")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--max-symbols", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shuffles", type=int, default=5, help="word orders drawn per text")
    parser.add_argument("--draws", type=int, default=3, help="answers drawn per prompt")
    parser.add_argument("--show", type=int, default=3, help="answers printed per bridge")
    args = parser.parse_args(argv)
    if args.chars < 0:
        parser.error(f"--chars must be >= 0 (0: the answers' mean length), got {args.chars}")
    if min(args.shuffles, args.snippets, args.draws) < 1:
        parser.error(f"--shuffles, --snippets and --draws must be >= 1, got {args.shuffles}, "
                     f"{args.snippets}, {args.draws}")

    from dualmind.data.text_tokenizer import BOS

    tok = corpus_tokenizer(args.corpus)
    lm, step = load_lm(args.reference)
    if lm.cfg.vocab_size != tok.get_vocab_size():
        sys.exit(f"error: {args.reference}: a vocabulary of {lm.cfg.vocab_size} tokens, "
                 f"{args.corpus / 'tokenizer.json'} has {tok.get_vocab_size()}: not its tokenizer")
    reference = Reference(lm, tok, BOS, lm.cfg.max_seq_len)
    prompts = read_prompts(args.prompts, PROMPTS)

    if any(p.resolve() == args.reference.resolve() for p in args.peer):
        sys.exit(f"error: {args.reference} is the reference: a peer scored by itself flatters it")
    said = {f"answers of {path}": answers(path, prompts, args)
            for path in [args.bridge, *args.more]}
    # Every text is cut to one length: a longer text gives the reference more context for its
    # order, so lines of different lengths would not compare. Default: the answers' mean.
    lengths = [len(s) for texts in said.values() for s in texts if s]
    chars = args.chars or max(40, round(sum(lengths) / max(len(lengths), 1)))
    said |= {f"continuations of {path}": continuations(path, prompts, tok, args)
             for path in args.peer}
    if args.renders:
        said |= {f"renders of {path}": renders(path, args.corpus, args.lang, args.renders,
                                               args.peer_tokens * 2)
                 for path in [args.bridge, *args.more]}
    said = {what: [cut(s, chars) for s in texts] for what, texts in said.items()}
    # a text of one word has no order to shuffle: counted and left out, never scored as salad
    short = {what: sum(len(s.split()) < 2 for s in texts) for what, texts in said.items()}
    real = held_out_snippets(args.corpus, args.lang, args.snippets, chars)
    print(f"reference: {args.reference} (step {step}); {len(prompts)} prompts x {args.draws} "
          f"draws, temperature {args.temperature}, top-k {args.top_k}; held-out {args.lang} "
          f"scenes; every text cut to {chars} characters; each text's words "
          f"shuffled {args.shuffles} times; ± one standard error over the texts\n")
    print("| text | texts | bits/byte as written | words shuffled | **order gain** | "
          "of the held-out text's |")
    print("|---|---|---|---|---|---|")
    language = reference.order_gain(real, args.seed, args.shuffles)
    print(language.row(f"held-out scenes ({args.lang})"))
    for what, texts in said.items():
        kept = [s for s in texts if len(s.split()) >= 2]
        note = f" ({short[what]} of under 2 words not scored)" if short[what] else ""
        if not kept:
            print(f"| {what}{note} | 0 | - | - | - | - |")
            continue
        print(reference.order_gain(kept, args.seed, args.shuffles).row(f"{what}{note}",
                                                                        language))
    for what, texts in said.items():
        print(f"\n{what}:")
        asked = (prompts if what.startswith(("answers", "continuations"))
                 else ["(a held-out scene)"] * len(texts))
        for prompt, text in list(zip(asked, texts, strict=False))[: args.show]:
            print(f"  {prompt} -> {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
