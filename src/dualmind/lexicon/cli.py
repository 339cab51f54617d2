"""`dualmind lexicon build|encode|decode|info`.

    dualmind lexicon build corpus/ more/*.jsonl --level semantic --out lex/   # 16,384 units
    dualmind lexicon build corpus/ --vocab-size 32768 --out lex/   # then train with
                                                                   # model.vocab_size=32768
    dualmind lexicon build --demo --out lex/            # the embedded demo corpus
    dualmind lexicon encode --lexicon lex/ "Ночью было темно."   # -> gloss on a terminal,
                                                                # the hyperphrase into a pipe
    dualmind lexicon encode --lexicon lex/ --format ids --input story.txt
    dualmind lexicon decode --lexicon lex/ "<hyperphrase>"  |  --ids "5 17 300"
    dualmind lexicon info lex/

Inputs are read by dualmind.sources.readers (txt / jsonl with a "text" field / parquet,
folders, globs; `--errors replace|skip|fail` with a counted summary), the same reader the
corpus build uses, so both see exactly the same documents.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from .lexicon import LEVELS, Lexicon
from .stopwords import no_stopwords
from .units import LexiconError

# The command's default size: model.vocab_size of the default training config (conf/model/
# mini.yaml, which core_mini and the demo train), so `lexicon build` -> `corpus build` ->
# `train.py recipe=core_mini` works with no flag; a lexicon larger than the core's vocabulary
# cannot be trained on. Lexicon.build's own default (DEFAULTS) is larger, for real corpora.
# tests/test_lexicon_cli.py checks the two configs still agree.
CLI_VOCAB_SIZE = 16384


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lexicon_command", metavar="SUBCOMMAND", required=True)

    b = sub.add_parser("build", help="learn a lexicon from a corpus")
    b.add_argument("inputs", nargs="*", help="files, folders or globs (.txt, .jsonl, .parquet)")
    b.add_argument("--demo", action="store_true", help="use the embedded bilingual demo corpus")
    b.add_argument("--out", required=True, help="lexicon directory to write")
    b.add_argument("--level", choices=LEVELS, default="lossless")
    b.add_argument("--vocab-size", type=int, default=CLI_VOCAB_SIZE,
                   help=f"most units, including reserved ids and bytes (default {CLI_VOCAB_SIZE}"
                        ": model.vocab_size of the default training config, core_mini's; a "
                        "larger lexicon needs model.vocab_size raised to its size to train)")
    b.add_argument("--langs", default="en,ru", help="comma-separated languages (default en,ru)")
    b.add_argument("--piece-merges", type=int, default=None, help="sub-word piece budget")
    b.add_argument("--phrase-share", type=float, default=None,
                   help="share of the vocabulary for multi-word units")
    b.add_argument("--max-n", type=int, default=None, help="max words in a multi-word unit")
    b.add_argument("--min-count", type=int, default=None, help="min count of a word/lemma unit")
    b.add_argument("--phrase-min-count", type=int, default=None,
                   help="min count of a multi-word unit")
    b.add_argument("--rounds", type=int, default=None, help="multi-word merge rounds")
    b.add_argument("--stopwords", action="append", default=[], metavar="LANG=FILE",
                   help="replace a language's stopword list (one word per line)")
    b.add_argument("--keep-function-words", action="store_true",
                   help="semantic: no stopwords in any language, so function words stay in the "
                        "hyperphrase as lemmas (what the demo does: docs/lexicon.md)")
    b.add_argument("--errors", choices=("replace", "skip", "fail"), default="replace",
                   help="bad input policy (counted in the summary)")
    b.add_argument("--text-field", default="text", help="JSON/Parquet field holding the text")
    from dualmind.sources.arguments import add_limit_arguments

    add_limit_arguments(b)  # the corpus build's reader and limits: both see the same documents
    b.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("encode", help="text -> hyperphrase (or ids, or gloss)")
    e.add_argument("--lexicon", required=True)
    e.add_argument("text", nargs="?", help="text to encode (default: --input or stdin)")
    e.add_argument("--input", help="read the text from this file")
    e.add_argument("--format", choices=("hyperphrase", "ids", "gloss", "units"), default=None,
                   help="default: hyperphrase into a pipe or file (the exact symbols), gloss on "
                        "a terminal (the symbols are private-use characters that print as blanks)")
    e.add_argument("--lang", default=None, help="language of the text (default: by script)")

    d = sub.add_parser("decode", help="hyperphrase or ids -> text (lossless) or gloss")
    d.add_argument("--lexicon", required=True)
    d.add_argument("hyperphrase", nargs="?", help="hyperphrase (default: stdin)")
    d.add_argument("--ids", help="space- or comma-separated unit ids instead of a hyperphrase")

    i = sub.add_parser("info", help="what a lexicon holds")
    i.add_argument("lexicon")
    i.add_argument("--top", type=int, default=10, help="show the N most frequent units per kind")


def run(args: argparse.Namespace) -> int:
    try:
        return {"build": _build, "encode": _encode, "decode": _decode,
                "info": _info}[args.lexicon_command](args)
    except LexiconError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _stopwords(specs: list[str]) -> dict[str, list[str]]:
    out = {}
    for spec in specs:
        lang, sep, path = spec.partition("=")
        if not sep:
            raise LexiconError(f"--stopwords {spec!r}: expected LANG=FILE")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise LexiconError(f"--stopwords {spec!r}: {e}") from e
        out[lang] = [w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#")]
    return out


def _build(args: argparse.Namespace) -> int:
    from dualmind.sources.documents import read_documents
    from dualmind.sources.problems import InputError, Problems
    from dualmind.sources.readers import ReadOptions, expand_inputs

    if not args.inputs and not args.demo:
        raise LexiconError("build: give input files/folders/globs, or --demo")
    if args.keep_function_words and (args.stopwords or args.level != "semantic"):
        raise LexiconError("--keep-function-words is for --level semantic and keeps every word; "
                           "it cannot go with --stopwords (an empty --stopwords file keeps one "
                           "language's)")
    problems = Problems(policy=args.errors)
    total = None
    if args.demo:
        from dualmind.sources.demo import demo_files

        args.inputs = list(args.inputs) + [str(p) for p in demo_files()]
    try:
        files = expand_inputs(args.inputs)
    except InputError as e:
        raise LexiconError(f"build: {e}") from e
    if not any(f.name.endswith(".gz") for f in files):
        total = sum(f.stat().st_size for f in files)
    try:
        opts = ReadOptions(args.text_field, args.max_line_bytes, args.max_document_bytes)
    except ValueError as e:
        raise LexiconError(f"build: {e}") from e
    n_docs = Counter()

    on_read_done = []

    def texts():
        for doc in read_documents(files, problems, opts):
            n_docs[doc.kind] += 1
            yield doc.text
            if doc.target:
                yield doc.target
        for hook in on_read_done:  # reading is done; the build learns units from here
            hook()

    langs = tuple(x.strip() for x in args.langs.split(",") if x.strip())
    stopwords = (no_stopwords(langs) if args.keep_function_words
                 else _stopwords(args.stopwords) or None)
    kwargs = dict(level=args.level, vocab_size=args.vocab_size, langs=langs,
                  stopwords=stopwords,
                  piece_merges=args.piece_merges, phrase_share=args.phrase_share,
                  max_n=args.max_n, min_count=args.min_count,
                  phrase_min_count=args.phrase_min_count, rounds=args.rounds)
    try:
        if args.no_progress or not sys.stderr.isatty():
            lex = Lexicon.build(texts(), **kwargs)
        else:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TransferSpeedColumn,
            )

            with Progress(TextColumn("lexicon build: {task.description}"), BarColumn(),
                          DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
                          transient=False) as bar:
                task = bar.add_task("reading", total=total)
                on_read_done.append(lambda: bar.update(
                    task, description="learning units",
                    total=bar.tasks[0].completed))
                lex = Lexicon.build(texts(), progress=lambda n: bar.advance(task, n), **kwargs)
    except InputError as e:
        raise LexiconError(f"build: {e}") from e
    if not n_docs:
        # a lexicon of bytes alone would look like a build that worked
        raise LexiconError(f"build: no usable documents in the inputs ({len(files)} files), "
                           f"no lexicon written; {problems.reason()}")
    out = lex.save(args.out)
    info = lex.build_info
    print(f"lexicon {lex.level}: {len(lex)} units -> {out}")
    print(f"  fingerprint {lex.fingerprint}")
    print(f"  a core trains on it with model.vocab_size >= {len(lex)}")
    print(f"  read {sum(n_docs.values())} documents ({dict(n_docs)}), "
          f"{info.get('train_bytes', 0) / 1e6:.2f} MB in {info.get('seconds', 0):.1f} s")
    kinds = Counter(u.kind for u in lex.units)
    print("  units: " + ", ".join(f"{k} {n}" for k, n in kinds.items()))
    for line in problems.summary_lines():
        print("  " + line)
    return 0


def _read_text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    if args.input:
        try:
            return Path(args.input).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise LexiconError(f"{args.input}: {e}") from e
    return sys.stdin.read()


def encode_format(requested: str | None, stdout=None) -> str:
    """An explicit --format always wins; otherwise a terminal gets the gloss, since hyperphrase
    symbols are private-use characters that most fonts draw as nothing (it looked like an empty
    line), while a pipe or file gets the exact symbols, for `decode` or a program to read."""
    if requested is not None:
        return requested
    stdout = stdout or sys.stdout
    return "gloss" if stdout.isatty() else "hyperphrase"


def _encode(args: argparse.Namespace) -> int:
    lex = Lexicon.load(args.lexicon)
    text = _read_text(args)
    ids = lex.encode(text, lang=args.lang)
    fmt = encode_format(args.format)
    if args.format is None and fmt == "gloss":
        print("(the gloss, as stdout is a terminal: --format hyperphrase prints the symbols)",
              file=sys.stderr)
    if fmt == "hyperphrase":
        print(lex.to_hyperphrase(ids))
    elif fmt == "ids":
        print(" ".join(map(str, ids)))
    elif fmt == "gloss":
        print(lex.decode(ids) if lex.level == "semantic" else "·".join(map(lex.gloss, ids)))
    else:
        for uid in ids:
            u = lex.unit(uid)
            print(f"{uid}\t{u.kind}\t{json.dumps(lex.gloss(uid), ensure_ascii=False)}")
    return 0


def _decode(args: argparse.Namespace) -> int:
    lex = Lexicon.load(args.lexicon)
    if args.ids is not None:
        try:
            ids = [int(x) for x in args.ids.replace(",", " ").split()]
        except ValueError as e:
            raise LexiconError(f"--ids: {e}") from e
    else:
        s = args.hyperphrase if args.hyperphrase is not None else sys.stdin.read()
        ids = lex.from_hyperphrase(s.rstrip("\n"))
    sys.stdout.write(lex.decode(ids))
    sys.stdout.write("\n")
    return 0


def _info(args: argparse.Namespace) -> int:
    lex = Lexicon.load(args.lexicon)
    print(f"{args.lexicon}: {lex.level} lexicon, {len(lex)} units, format v{lex.FORMAT_VERSION}")
    print(f"  fingerprint {lex.fingerprint}")
    print(f"  options {json.dumps(lex.options, ensure_ascii=False)}")
    print(f"  build {json.dumps(lex.build_info, ensure_ascii=False)}")
    by_kind: dict[str, list] = {}
    for u in lex.units:
        by_kind.setdefault(u.kind, []).append(u)
    for kind, units in by_kind.items():
        top = sorted(units, key=lambda u: -u.count)[: args.top]
        shown = ", ".join(json.dumps(lex.gloss(u.id), ensure_ascii=False) for u in top)
        print(f"  {kind:8s} {len(units):6d}  e.g. {shown}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dualmind.lexicon.cli")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
