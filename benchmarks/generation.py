"""Generation through the bridge: the KV cache's speed-up, time to first rendered word, and what
retrieval does for planted facts.

    nice -n 5 .venv/bin/python benchmarks/generation.py --demo runs/demo     # after `make demo`
    .venv/bin/python benchmarks/generation.py --no-write                      # cache part only

1. KV cache: the mini core continues a 512-symbol context by --new symbols (greedy, no stop),
   once reading only the new symbol against cached keys/values, once re-reading the whole
   sequence at every step (the same thought either way: checked). Ratio of wall times, prefill
   included in both. Weights: the demo's trained core if --demo is given, else a random mini
   core (speed does not depend on the values).
2. Time to first rendered word of the demo bridge (lexicon-semantic + decoder_align) on the
   demo's chat prompts, with the bridge's default sampling (32 symbols of thought, then text):
   median of --repeats runs per prompt; the thought comes first, so it includes the thinking.
3. Retrieval on the demo model: planted facts (distinctive sentences) among --distractors
   scenes of the demo corpus, pooling the final-norm states and the symbol embeddings (layer 0,
   the index's default; benchmarks/index_pooling.py compares more layers and cores);
   recall@1/@3 of the fact for a question about it, and the answer's negative log-likelihood
   with no retrieval, with what retrieval found (k=1), with the right fact placed by hand
   (oracle), and with an unrelated scene (a control: does any context do the same?): the
   core's nats per symbol of the answer's hyperphrase after the question, and the decoder's
   nats per token of the answer text read from the question's states (how QA pairs are
   aligned).

Results go to benchmarks/RESULTS.md between <!-- generation:start --> and <!-- generation:end -->.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from results_md import write_section  # benchmarks/ is on sys.path when run as a script

PROMPTS = ["What is the night full of?", "Почему мне тревожно перед сном?"]
# (fact, question, answer): the answer's words are in the fact, not in the question.
PLANTED = [
    ("The lighthouse keeper Aldric paints his boat green every spring.",
     "What colour does the lighthouse keeper Aldric paint his boat?",
     "Aldric paints his boat green every spring."),
    ("The miller Hedwig keeps forty white geese behind the old mill.",
     "What does the miller Hedwig keep behind the mill?",
     "Hedwig keeps forty white geese."),
    ("The village of Brannock sits at the foot of a red volcano.",
     "Where does the village of Brannock sit?",
     "Brannock sits at the foot of a red volcano."),
    ("The sailor Ottilie carries a silver compass from her grandfather.",
     "What does the sailor Ottilie carry?",
     "Ottilie carries a silver compass from her grandfather."),
    ("The poet Lysander writes his verses on birch bark by candlelight.",
     "On what does the poet Lysander write his verses?",
     "Lysander writes on birch bark by candlelight."),
    ("Купец Ферапонт хранит янтарь в дубовом сундуке.",
     "Где купец Ферапонт хранит янтарь?",
     "Ферапонт хранит янтарь в дубовом сундуке."),
    ("Рыбак Евстигней ловит щук на рассвете у старой мельницы.",
     "Когда рыбак Евстигней ловит щук?",
     "Евстигней ловит щук на рассвете у старой мельницы."),
    ("Учительница Аглая играет на арфе по воскресеньям.",
     "На чём играет учительница Аглая?",
     "Аглая играет на арфе по воскресеньям."),
]


# ---- 1. the KV cache ----------------------------------------------------------------------------


def cache_speedup(core, context: int, new: int) -> dict:
    from dualmind.bridge.thinking import think

    gen = torch.Generator().manual_seed(0)
    ctx = torch.randint(4, min(core.cfg.vocab_size, 8000), (context,), generator=gen).tolist()
    think(core, ctx[:64], 4, temperature=0.0, stop_ids=())  # warm-up (allocator, kernels)
    think(core, ctx[:64], 4, temperature=0.0, stop_ids=(), use_cache=False)
    cached = think(core, ctx, new, temperature=0.0, stop_ids=())
    full = think(core, ctx, new, temperature=0.0, stop_ids=(), use_cache=False)
    if cached.ids != full.ids:
        raise SystemExit("the cached and the uncached thought differ: the KV cache is wrong")
    t0 = time.perf_counter()
    with torch.no_grad():
        core(torch.tensor([ctx]))
    prefill = time.perf_counter() - t0
    return {"context": context, "new": new, "cached_s": cached.seconds, "full_s": full.seconds,
            "ratio": full.seconds / cached.seconds, "prefill_s": prefill,
            "cached_ms_per_symbol": 1000 * (cached.seconds - prefill) / new,
            "full_ms_per_symbol": 1000 * full.seconds / new}


# ---- 2. time to first rendered word -------------------------------------------------------------


def first_word(bridge, repeats: int) -> list[dict]:
    rows = []
    bridge.generate(PROMPTS[0], max_symbols=4, max_tokens=4, seed=0)  # warm-up
    for prompt in PROMPTS:
        runs = [bridge.generate(prompt, seed=s) for s in range(repeats)]
        fw = [a.timings.first_word_s for a in runs if a.timings.first_word_s is not None]
        rows.append({
            "prompt": prompt,
            "first_word_s": statistics.median(fw) if fw else None,
            "words_rendered": len(fw), "runs": repeats,
            "think_s": statistics.median(a.timings.think_s for a in runs),
            "symbols": statistics.median(a.timings.thought_symbols for a in runs),
            "symbols_per_s": statistics.median(a.timings.symbols_per_s for a in runs),
            "tokens_per_s": statistics.median(a.timings.tokens_per_s for a in runs),
            "example": runs[0]})
    return rows


# ---- 3. retrieval and answers -------------------------------------------------------------------


@torch.no_grad()
def core_answer_nll(core, context: list[int], answer: list[int]) -> float:
    """Nats per symbol of ``answer`` continuing ``context`` (teacher forced)."""
    ids = torch.tensor([context + answer])
    logits = core(ids).logits[0, len(context) - 1:-1].float()
    return float(F.cross_entropy(logits, torch.tensor(answer)))


@torch.no_grad()
def decoder_answer_nll(bridge, context: list[int], n_question: int, answer: str) -> float:
    """Nats per token of the answer text (and its EOS) read from the question's core states."""
    states = bridge.core(torch.tensor([context])).hidden[:, -n_question:]
    tokens = bridge.tokenizer.encode(answer, add_special_tokens=False).ids
    text = torch.tensor([[bridge.bos] + tokens])
    target = torch.tensor(tokens + [bridge.eos])
    logits = bridge.decoder(text, states)[0].float()
    return float(F.cross_entropy(logits, target))


def retrieval(bridge, corpus: Path, distractors: int, layer: int | None = None) -> dict:
    from dualmind.bridge.retrieval import SceneIndex, SceneRecord, corpus_records

    lex = bridge.lexicon
    records, _ = corpus_records(corpus, ("train", "val"), ("scene",), distractors)
    planted = [SceneRecord(f"planted:{i}", lex.encode(f), f) for i, (f, _, _) in
               enumerate(PLANTED)]
    t0 = time.perf_counter()
    index = SceneIndex.build(bridge.core, planted + records, bridge.core_fingerprint,
                             lex.fingerprint, layer=layer)
    build_s = time.perf_counter() - t0
    hits1 = hits3 = 0
    nll = {k: [[], []] for k in ("none", "unrelated", "retrieved", "oracle")}
    unrelated = records[len(records) // 2].units  # control: any scene before the question
    for i, (fact, question, answer) in enumerate(PLANTED):
        q, a = lex.encode(question), lex.encode(answer)
        found = index.search(bridge.core, q, 3)
        keys = [h.key for h in found]
        hits1 += keys[0] == f"planted:{i}"
        hits3 += f"planted:{i}" in keys
        for name, before in (("none", []), ("unrelated", unrelated), ("retrieved", found[0].units),
                             ("oracle", lex.encode(fact))):
            nll[name][0].append(core_answer_nll(bridge.core, before + q, a))
            nll[name][1].append(decoder_answer_nll(bridge, before + q, len(q), answer))
    n = len(PLANTED)
    return {"scenes": len(index), "build_s": build_s, "recall1": hits1 / n, "recall3": hits3 / n,
            "layer": layer,
            "nll": {k: (statistics.mean(v[0]), statistics.mean(v[1])) for k, v in nll.items()},
            "core_better": sum(o < z for o, z in zip(nll["oracle"][0], nll["none"][0],
                                                     strict=True)),
            "n": n}


# ---- report -------------------------------------------------------------------------------------


def report(cache: dict, source: str, fw: list[dict] | None, rets: list[dict] | None,
           threads: int, align: str | None) -> str:
    from dualmind.bridge.retrieval import POOLED_LAYER

    lines = [
        "## Generation through the bridge (`benchmarks/generation.py`)", "",
        f"CPU, {threads} torch threads, {platform.processor() or platform.machine()}, "
        f"`nice -n 5` on a machine shared with other jobs (load varies: ratios between "
        "neighbouring runs are what is stable). "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "", f"### KV cache vs re-reading everything (mini core, {source})", "",
        "| context | new symbols | with cache | without | ratio | prefill | ms/symbol cached | "
        "ms/symbol re-read |", "|---|---|---|---|---|---|---|---|",
        f"| {cache['context']} | {cache['new']} | {cache['cached_s']:.2f} s | "
        f"{cache['full_s']:.2f} s | **{cache['ratio']:.1f}x** | {cache['prefill_s']:.3f} s | "
        f"{cache['cached_ms_per_symbol']:.1f} | {cache['full_ms_per_symbol']:.1f} |", "",
        f"Target >= 5x: {'met' if cache['ratio'] >= 5 else 'NOT met'}. Both runs produce the same "
        "thought (checked); both include the prefill of the context.",
    ]
    if fw is not None:
        lines += ["", f"### Time to first rendered word (demo bridge: {align})", "",
                  "Default sampling (temperature 0.8, top-k 50, up to 32 symbols of thought, the "
                  "decoder reading question + thought). The thought is complete before the "
                  "decoder starts, so the first word includes the thinking.", "",
                  "| prompt | first word (median) | thought | symbols/s | tokens/s |",
                  "|---|---|---|---|---|"]
        for r in fw:
            first = (f"{r['first_word_s']:.2f} s" if r["first_word_s"] is not None
                     else "no word")
            lines.append(f"| {r['prompt']} | {first} ({r['words_rendered']}/{r['runs']} runs "
                         f"with a word) | {r['think_s']:.2f} s for {r['symbols']:.0f} symbols | "
                         f"{r['symbols_per_s']:.1f} | {r['tokens_per_s']:.1f} |")
        ex = fw[0]["example"]
        lines += ["", f"Example (seed 0): thought `{ex.thought_gloss[:160]}` -> "
                  f"answer `{' '.join(ex.text.split())[:160]}`"]
    if rets:
        ret, emb = rets[0], rets[-1]
        none, got, oracle = ret["nll"]["none"], ret["nll"]["retrieved"], ret["nll"]["oracle"]
        other, got0 = ret["nll"]["unrelated"], emb["nll"]["retrieved"]
        lines += ["", "### Retrieval of planted facts (demo model)", "",
                  f"{ret['n']} planted facts among {ret['scenes'] - ret['n']} demo-corpus "
                  "scenes; a question about each fact shares its content words.", "",
                  "| pooled states | recall@1 | recall@3 | index built in |", "|---|---|---|---|"]
        for r in rets:
            name = ("final-norm hidden states" if r["layer"] is None
                    else f"layer {r['layer']} (0 = symbol embeddings)")
            name += " (default)" if r["layer"] == POOLED_LAYER else ""
            lines.append(f"| {name} | **{r['recall1']:.2f}** | **{r['recall3']:.2f}** | "
                         f"{r['build_s']:.1f} s |")
        lines += ["", "Answer NLL, mean over the planted questions (lower is better):", "",
                  "| context before the question | core nats/symbol of the answer | "
                  "decoder nats/token of the answer text |", "|---|---|---|",
                  f"| nothing | {none[0]:.3f} | {none[1]:.3f} |",
                  f"| an unrelated corpus scene (control) | {other[0]:.3f} | {other[1]:.3f} |",
                  f"| top-1 retrieved scene (final-norm index) | {got[0]:.3f} | {got[1]:.3f} |",
                  f"| top-1 retrieved scene (layer-0 index) | {got0[0]:.3f} | {got0[1]:.3f} |",
                  f"| the right fact (oracle) | {oracle[0]:.3f} | {oracle[1]:.3f} |", "",
                  f"With the retrieved scene (final-norm index), the answer NLL changes by "
                  f"{got[0] - none[0]:+.3f} nats/symbol (core) and {got[1] - none[1]:+.3f} "
                  f"nats/token (decoder) against no context, and by {got[0] - other[0]:+.3f} / "
                  f"{got[1] - other[1]:+.3f} against the unrelated scene (negative = retrieval "
                  f"helps). The core's NLL is lower with the right fact than without context for "
                  f"{ret['core_better']}/{ret['n']} questions. These are the figures of this mini "
                  "model (training steps above), reported as measured."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default=None,
                        help="demo output folder (lexicon-semantic, corpus, core_mini, "
                             "decoder_align); without it only the cache part runs")
    parser.add_argument("--align", default=None,
                        help="align checkpoint (default: DEMO/decoder_align/checkpoints/last.ckpt)")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--distractors", type=int, default=400)
    # One thread: on a shared, loaded CPU extra intra-op threads mostly wait on each other (a
    # cached step of the mini core took 16 ms on one thread, 117 ms on two, on the same machine).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    bridge, align = None, None
    if args.demo:
        from dualmind.bridge.bridge import Bridge

        demo = Path(args.demo)
        align = (Path(args.align) if args.align
                 else demo / "decoder_align" / "checkpoints" / "last.ckpt")
        bridge = Bridge.from_checkpoints(demo / "lexicon-semantic", align)
        step = torch.load(align, map_location="cpu", weights_only=True, mmap=True)["global_step"]
        align = (f"{align}: decoder trained {step} steps on the frozen core "
                 f"{bridge.meta.get('core_checkpoint')}")
        core, source = bridge.core, "trained weights of that bridge"
    else:
        from dualmind.model.config import CoreConfig
        from dualmind.model.core import HyperCore

        torch.manual_seed(0)
        core, source = HyperCore(CoreConfig.from_name("mini")).eval(), "random weights"
    cache = cache_speedup(core, args.context, args.new)
    print(f"KV cache: {cache['ratio']:.1f}x ({cache['cached_s']:.2f} s vs {cache['full_s']:.2f} s)",
          flush=True)
    fw = ret = None
    if bridge is not None:
        fw = first_word(bridge, args.repeats)
        for r in fw:
            print(f"first word {r['first_word_s']} s for {r['prompt']!r}", flush=True)
        ret = [retrieval(bridge, Path(args.demo) / "corpus", args.distractors, layer)
               for layer in (None, 0)]
        for r in ret:
            print(f"retrieval (layer {r['layer']}): recall@1 {r['recall1']:.2f} recall@3 "
                  f"{r['recall3']:.2f}; nll {r['nll']}", flush=True)
    text = report(cache, source, fw, ret, args.threads, str(align) if align else None)
    print(text)
    if not args.no_write:
        write_section("generation", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
