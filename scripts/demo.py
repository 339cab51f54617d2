"""`make demo`: the whole dualmind pipeline on the embedded bilingual demo corpus.

1. read the embedded corpus (English + Russian prose, QA pairs)
2. learn two hyperlexicons (lossless and semantic) from its training documents
3. show what a hyperphrase is, and how many positions each level needs against BPE
4. build hypertrain.jsonl and packed shards for the semantic level
5. pretrain the mini hyper-core on them and show its loss falling

Every step prints what it made; artifacts land under --out (default runs/demo) and a
second run reuses finished steps (delete the folder to start over).
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

REPO = Path(__file__).resolve().parents[1]
console = Console()


def step(n: int, total: int, title: str) -> None:
    console.rule(f"[bold]step {n}/{total} · {title}")


def learn_lexicon(texts: list[str], level: str, out: Path, vocab_size: int):
    from dualmind.lexicon import Lexicon

    if out.is_dir() and any(out.iterdir()):
        try:
            lex = Lexicon.load(out, level=level)
            if len(lex) > vocab_size:
                raise ValueError(f"it has {len(lex)} units, more than the core's {vocab_size}")
            console.print(f"reusing {level} lexicon {out} ({len(lex)} units, {lex.fingerprint[:12]})")
            return lex
        except Exception as exc:  # a half-written or stale folder: rebuild it, say so
            console.print(f"[yellow]rebuilding {out}: {exc}")
    total = sum(len(t.encode("utf-8")) for t in texts)
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"learning the {level} lexicon", total=total)
        lex = Lexicon.build(texts, level=level, vocab_size=vocab_size,
                            progress=lambda n: bar.advance(task, n))
    lex.save(out)
    console.print(f"{level}: {len(lex)} units learned in {time.perf_counter() - t0:.1f} s "
                  f"→ {out} (fingerprint {lex.fingerprint[:12]})")
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
    table = Table(title="positions needed for held-out text (more bytes/position = shorter sequences)")
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
            row.append(f"{n_bytes / sum(len(enc.encode(t, disallowed_special=())) for t in texts):.2f}")
        table.add_row(*row)
    console.print(table)
    if not encodings:
        console.print("[yellow]tiktoken reference tokenizers unavailable (set TIKTOKEN_CACHE_DIR to an "
                      "offline cache); showing dualmind's levels only")


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
    parser.add_argument("--steps", type=int, default=None, help="override core_mini's max_steps")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    total = 5
    t_demo = time.perf_counter()

    from dualmind.data.demo import load_demo_documents, load_demo_qa

    step(1, total, "the embedded demo corpus")
    docs = load_demo_documents()
    qa = load_demo_qa()
    by_lang: dict[str, list] = {}
    for d in docs:
        by_lang.setdefault(d.lang, []).append(d)
    for lang, ds in by_lang.items():
        console.print(f"{lang}: {len(ds)} documents, {sum(len(d.text.encode('utf-8')) for d in ds) / 1e6:.2f} MB")
    console.print(f"QA pairs: {len(qa)}")
    # Hold out every 20th document per language: the lexicon never sees them.
    train_texts = [d.text for ds in by_lang.values() for i, d in enumerate(ds) if i % 20]
    held_out = {lang: [d.text for i, d in enumerate(ds) if i % 20 == 0] for lang, ds in by_lang.items()}

    step(2, total, "learning the hyperlexicons")
    from dualmind.config import compose

    # The core's vocabulary (conf/model/mini.yaml) bounds the lexicon: one source of truth.
    vocab_size = int(compose(["recipe=core_mini"]).model.vocab_size)
    console.print(f"vocabulary: up to {vocab_size} units (model.vocab_size of recipe core_mini)")
    lexicons = {level: learn_lexicon(train_texts, level, out / f"lexicon-{level}", vocab_size)
                for level in ("semantic", "lossless")}

    step(3, total, "what a hyperphrase looks like")
    samples = [(lang, _first_sentence(texts[0])) for lang, texts in held_out.items()]
    show_hyperphrases(lexicons, samples)
    compression_table(lexicons, held_out)

    step(4, total, "building hypertrain.jsonl and packed shards (semantic level)")
    from dualmind.data.corpus import build_corpus

    # overwrite=True: a lexicon rebuilt since the last demo makes the old corpus stale.
    summary = build_corpus(None, out / "lexicon-semantic", out / "corpus", num_shards=4, workers=2,
                           overwrite=True)
    for line in summary.lines():
        console.print(line, markup=False)

    step(5, total, "pretraining the mini hyper-core")
    from dualmind.train_loop import train

    overrides = ["recipe=core_mini", f"data.dir={out / 'corpus'}", f"run_dir={out / 'core_mini'}"]
    if args.steps:
        overrides.append(f"trainer.max_steps={args.steps}")
    result = train(overrides)
    console.print(result.summary())
    if not result.last_loss < result.first_loss:
        console.print("[red]the loss did not fall: something is wrong")
        return 1
    console.rule(f"demo finished in {time.perf_counter() - t_demo:.0f} s; artifacts in {out}")
    return 0


def _first_sentence(text: str, max_chars: int = 220) -> str:
    line = next((ln.strip() for ln in text.splitlines() if len(ln.strip()) > 40), text.strip())
    return line[:max_chars]


if __name__ == "__main__":
    sys.exit(main())
