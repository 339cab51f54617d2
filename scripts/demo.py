"""`make demo`: the whole dualmind pipeline on the embedded bilingual demo corpus.

1. read the embedded corpus (English + Russian prose, QA pairs)
2. learn two hyperlexicons (lossless, and semantic with its function words kept) from its
   training documents
3. show what a hyperphrase is, and how many positions each level needs against BPE
4. build hypertrain.jsonl and packed shards for the semantic level
5. pretrain the mini hyper-core on them and show its loss falling
6-9. align the language decoder to the frozen core, render held-out scenes, write a visualiser
   report, and end with a scripted chat through the bridge, the core's thought shown
   (scripts/demo_heads.py)

Every step prints what it made; artifacts land under --out (default runs/demo). Lexicons are
always relearned (seconds, and deterministic); the corpus build then finds itself up to date.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dualmind.lexicon.stopwords import no_stopwords

REPO = Path(__file__).resolve().parents[1]
console = Console()


def step(n: int, total: int, title: str) -> None:
    console.rule(f"[bold]step {n}/{total} · {title}")


# The demo's semantic lexicon keeps function words (`dualmind lexicon build --keep-function-words`):
# with them dropped, the mini core's stream is lemmas whose order its 300 steps cannot learn
# (it stays a unigram model of each scene), and the decoder must guess every "the", "of" and
# "is" between them. Kept, the same steps give a core that reads its prompts and renders that
# say 3-4 in 10 held-out words in order instead of 1 in 20 (RESULTS.md, question_reading).
KEEP_FUNCTION_WORDS = no_stopwords(("en", "ru"))


def learn_lexicon(texts: list[str], level: str, out: Path, vocab_size: int,
                  stopwords: dict[str, list[str]] | None = None):
    from dualmind.lexicon.lexicon import Lexicon

    total = sum(len(t.encode("utf-8")) for t in texts)
    t0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"learning the {level} lexicon", total=total)
        lex = Lexicon.build(texts, level=level, vocab_size=vocab_size, stopwords=stopwords,
                            progress=lambda n: bar.advance(task, n))
    lex.save(out)
    console.print(
        f"{level}: {len(lex)} units learned in {time.perf_counter() - t0:.1f} s "
        f"→ {out} (fingerprint {lex.fingerprint[:12]})"
    )
    return lex


def show_hyperphrases(lexicons: dict, samples: list[tuple[str, str]]) -> None:
    for lang, text in samples:
        console.print(f"\n[bold]{lang}[/] text ({len(text.encode('utf-8'))} bytes):\n  {text}")
        for level, lex in lexicons.items():
            ids = lex.encode(text)
            gloss = lex.decode(ids) if level == "semantic" else "·".join(lex.gloss(i) for i in ids)
            console.print(f"  [cyan]{level}[/] {len(ids)} symbols: {gloss}")
            if level == "lossless":
                assert lex.decode(ids) == text, "lossless round trip failed"


def compression_table(lexicons: dict, held_out: dict[str, list[str]]) -> None:
    """Text bytes per core position on held-out documents, beside tiktoken's BPE."""
    table = Table(
        title="positions needed for held-out text (more bytes/position = shorter sequences)"
    )
    table.add_column("lang")
    table.add_column("bytes")
    for level in lexicons:
        table.add_column(f"{level}\nbytes/pos", justify="right")
    encodings = _reference_encodings()
    for name in encodings:
        table.add_column(f"{name}\nbytes/pos", justify="right")
    for lang, texts in held_out.items():
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        row = [lang, f"{n_bytes / 1e3:.0f} kB"]
        for lex in lexicons.values():
            row.append(f"{n_bytes / sum(len(lex.encode(t, lang=lang)) for t in texts):.2f}")
        for enc in encodings.values():
            row.append(
                f"{n_bytes / sum(len(enc.encode(t, disallowed_special=())) for t in texts):.2f}"
            )
        table.add_row(*row)
    console.print(table)
    if not encodings:
        console.print(
            "[yellow]tiktoken reference tokenizers unavailable (set TIKTOKEN_CACHE_DIR to an "
            "offline cache); showing dualmind's levels only"
        )


def _reference_encodings() -> dict:
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or str(REPO.parent / "shared/data/tiktoken-cache")
    if not Path(cache).is_dir():
        return {}
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    try:
        import tiktoken

        return {"o200k_base": tiktoken.get_encoding("o200k_base")}
    except Exception as exc:  # offline cache incomplete or tiktoken missing: say so, go on
        console.print(f"[yellow]tiktoken unavailable: {exc}")
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="where the demo writes its artifacts")
    # 600 core steps, not core_mini's 300: with its function words kept the demo's stream has
    # order to learn, and the second 300 steps (~2 min here) take the core from 0.13 nats a symbol
    # behind a bigram counted on its training split to 0.17 ahead (RESULTS.md, question_reading);
    # the decoder, reading fewer tokens a unit, aligns in the time they cost.
    parser.add_argument("--steps", type=int, default=600,
                        help="the core's pretraining steps (default 600; core_mini's own: 300)")
    parser.add_argument(
        "--align-steps", type=int, default=None, help="override decoder_align's max_steps"
    )
    # The steps of core_mini and decoder_align fit ~15 minutes on 2 cores with native bf16; a CPU
    # without it trains in fp32 at a half or less of that pace. Each stage gets a time budget
    # instead of trusting this machine to be that one: after 10 steps a stage that would not
    # fit lowers its step count (and its schedule) and says so (trainer.time_budget_s). The core
    # gets 360 s, the decoder 360 s (the same sum as 300 + 420 before): 600 core steps take
    # ~270 s here, but a slow start made the 300 s budget cut them to 564-582 on fresh clones;
    # the decoder's 300 steps take ~200 s (RESULTS.md, chat_fluency). The demo's last line,
    # whether the core tells two prompts apart, is not settled by the step count: two fresh
    # clones of one commit, both 600 steps, read 1.43 and 0.021 nats.
    parser.add_argument("--core-seconds", type=float, default=360,
                        help="time budget of the core's pretraining (0: none)")
    parser.add_argument("--align-seconds", type=float, default=360,
                        help="time budget of the decoder's alignment (0: none)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    total = 9
    t_demo = time.perf_counter()

    from dualmind.sources.demo import load_demo_documents, load_demo_qa

    step(1, total, "the embedded demo corpus")
    docs = load_demo_documents()
    qa = load_demo_qa()
    by_lang: dict[str, list] = {}
    for d in docs:
        by_lang.setdefault(d.lang, []).append(d)
    for lang, ds in by_lang.items():
        n_bytes = sum(len(d.text.encode("utf-8")) for d in ds)
        console.print(f"{lang}: {len(ds)} documents, {n_bytes / 1e6:.2f} MB")
    console.print(f"QA pairs: {len(qa)}")
    # The lexicon never sees the documents the corpus build will hold out for validation, so
    # the compression shown here and the core's validation bits/byte are both on unseen text.
    val = held_out_documents(docs)
    train_texts = [d.text for i, d in enumerate(docs) if i not in val]
    held_out: dict[str, list[str]] = {}
    for i in sorted(val):
        held_out.setdefault(docs[i].lang, []).append(docs[i].text)
    console.print(f"held out for validation: {len(val)} documents (never seen by the lexicon)")

    step(2, total, "learning the hyperlexicons")
    from dualmind.config.schema import compose

    # The core's vocabulary (conf/model/mini.yaml) bounds the lexicon: one source of truth.
    vocab_size = int(compose(["recipe=core_mini"]).model.vocab_size)
    console.print(f"vocabulary: up to {vocab_size} units (model.vocab_size of recipe core_mini)")
    console.print("semantic level: function words kept as lemmas (see KEEP_FUNCTION_WORDS)")
    lexicons = {
        "semantic": learn_lexicon(train_texts, "semantic", out / "lexicon-semantic", vocab_size,
                                  stopwords=KEEP_FUNCTION_WORDS),
        "lossless": learn_lexicon(train_texts, "lossless", out / "lexicon-lossless", vocab_size),
    }

    step(3, total, "what a hyperphrase looks like")
    samples = [(lang, _first_sentence(texts[0])) for lang, texts in held_out.items()]
    show_hyperphrases(lexicons, samples)
    compression_table(lexicons, held_out)

    step(4, total, "building hypertrain.jsonl and packed shards (semantic level)")
    from dualmind.data.build.corpus import build_corpus

    # overwrite=True: a lexicon rebuilt since the last demo makes the old corpus stale.
    summary = build_corpus(
        None, out / "lexicon-semantic", out / "corpus", num_shards=4, workers=2, overwrite=True
    )
    for line in summary.lines():
        console.print(line, markup=False)
    if val_document_ids(out / "corpus", summary.manifest) != {docs[i].id for i in val}:
        console.print("[red]the corpus held out other documents than the lexicon did")
        return 1

    step(5, total, "pretraining the mini hyper-core")
    from dualmind.train.loop import train

    pieces = unit_pieces(out / "corpus")
    overrides = ["recipe=core_mini", f"data.dir={out / 'corpus'}", f"run_dir={out / 'core_mini'}",
                 f"data.lexicon={out / 'lexicon-semantic'}", *pieces]
    if args.steps:
        overrides.append(f"trainer.max_steps={args.steps}")
    if args.core_seconds:
        overrides.append(f"trainer.time_budget_s={args.core_seconds}")
    result = train(overrides)
    console.print(result.summary())
    if not result.last_loss < result.first_loss:
        console.print("[red]the loss did not fall: something is wrong")
        return 1

    import demo_heads

    step(6, total, "aligning the language decoder to the frozen core")
    aligned = demo_heads.align_decoder(out, console, args.align_steps, args.align_seconds)
    if not aligned.last_loss < aligned.first_loss:
        console.print("[red]the decoder's loss did not fall: something is wrong")
        return 1
    step(7, total, "held-out scenes rendered from the core's states alone")
    demo_heads.render_held_out(out, console)
    step(8, total, "the visualiser: watch the core think and the decoder read")
    demo_heads.visualise(out, console)
    step(9, total, "a scripted chat through the bridge (the core's thought shown)")
    demo_heads.scripted_chat(out, console)
    console.rule(f"demo finished in {time.perf_counter() - t_demo:.0f} s; artifacts in {out}")
    return 0


def unit_pieces(corpus: Path) -> list[str]:
    """The core's unit pieces (model.unit_pieces): each unit's row also reads the mean of its
    lemma's first 4 BPE pieces, so the many rare units of a 16k lexicon learn from the pieces they
    share; the demo's core then reaches held-out 1.807 bits/byte in its 600 steps instead of
    1.837 (benchmarks/RESULTS.md, unit_pieces). The align run reads them from the core."""
    from dualmind.data.text_tokenizer import load_text_tokenizer

    size = load_text_tokenizer(corpus / "tokenizer.json").get_vocab_size()
    return ["model.unit_pieces=4", f"model.piece_vocab={size}"]


def held_out_documents(docs: list) -> set[int]:
    """Indices of the documents `build_corpus` will put in its val split (same rule, same keys)."""
    from dualmind.data.build.options import BuildOptions
    from dualmind.data.build.plan import choose_val

    rows = [
        {"doc": i, "key": d.id, "lang": d.lang, "kind": "doc", "chars": len(d.text)}
        for i, d in enumerate(docs)
    ]
    return choose_val(rows, BuildOptions().val_fraction)


def val_document_ids(corpus: Path, manifest: dict) -> set[str]:
    """Document ids of the val records in hypertrain.jsonl (records are laid out by split)."""
    import json
    from itertools import islice

    splits = manifest["splits"]
    skip = 0
    for name in manifest["hypertrain"]["split_order"]:
        if name == "val":
            break
        skip += splits[name]["records"]
    with open(corpus / "hypertrain.jsonl", encoding="utf-8") as f:
        rows = islice(f, skip, skip + splits["val"]["records"])
        return {json.loads(row)["id"].rsplit("#", 1)[0] for row in rows}


def _first_sentence(text: str, max_chars: int = 220) -> str:
    line = next((ln.strip() for ln in text.splitlines() if len(ln.strip()) > 40), text.strip())
    return line[:max_chars]


def stopping_cleanly(argv: list[str] | None = None) -> int:
    """main(), with a run stopped by SIGTERM or Ctrl-C reported in one line, not a traceback
    (its checkpoint is saved; the demo itself starts over when run again)."""
    from dualmind.train.stop_signal import TrainingStopped

    try:
        return main(argv)
    except TrainingStopped as stop:
        console.print(f"[yellow]demo {stop}; `make demo` starts over")
        return stop.exit_code


if __name__ == "__main__":
    sys.exit(stopping_cleanly())
