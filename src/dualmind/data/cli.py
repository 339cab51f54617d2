"""`dualmind corpus build | validate | info` (see docs/hypertrain.md).

dualmind corpus build --lexicon runs/lex --out runs/corpus              # the embedded demo
dualmind corpus build data/*.txt more.jsonl --lexicon runs/lex --out runs/corpus --workers 4
dualmind corpus build train/ --heldout val/en.txt val/ru.txt --lexicon runs/lex --out runs/corpus
dualmind corpus validate runs/corpus      # schema of hypertrain.jsonl, shards, manifest
dualmind corpus info runs/corpus          # what was built
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dualmind.sources.arguments import add_limit_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND", required=True)

    b = sub.add_parser(
        "build",
        help="documents + lexicon -> hypertrain.jsonl, tokenizer.json, shards",
        description="Build a corpus folder. Resumes an interrupted build with the same "
        "settings; finished shards are never rewritten.",
    )
    b.add_argument(
        "inputs",
        nargs="*",
        help="text/JSONL/Parquet files, folders or globs (default: the embedded demo corpus)",
    )
    b.add_argument(
        "--demo",
        action="store_true",
        help="use the embedded demo corpus (the default without inputs)",
    )
    b.add_argument(
        "--lexicon", required=True, help="lexicon folder (from `dualmind lexicon build`)"
    )
    b.add_argument("--out", required=True, help="output corpus folder")
    b.add_argument(
        "--level",
        choices=("lossless", "semantic"),
        help="require the lexicon to be of this level (error otherwise)",
    )
    b.add_argument(
        "--num-shards", type=int, default=8, help="train shards (val and qa get their own)"
    )
    b.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: CPU count)"
    )
    b.add_argument(
        "--backend",
        choices=("process", "serial", "ray"),
        default="process",
        help="where shards are built; ray needs the `cluster` extra",
    )
    b.add_argument(
        "--ray-address", default=None, help="Ray cluster address (default: start a local one)"
    )
    b.add_argument(
        "--errors",
        choices=("replace", "skip", "fail"),
        default="replace",
        help="bad input policy: repair-and-count, skip-and-count, or stop (file:line)",
    )
    b.add_argument(
        "--text-vocab-size", type=int, default=8192, help="decoder byte-level BPE vocabulary"
    )
    b.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="held-out share of each language's characters, by whole documents chosen by a "
        "hash of their id (default 0.05); not with --heldout",
    )
    b.add_argument(
        "--heldout",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="files, folders or globs whose documents form the val split, and nothing else "
        "does (a file also among the inputs is held out); replaces --val-fraction",
    )
    b.add_argument(
        "--text-tokens",
        choices=("auto", "text", "units"),
        default="auto",
        help="how scene text becomes decoder tokens: units = each unit's text on its own (no "
        "token crosses a unit), text = the scene at once; auto (default): units for a lossless "
        "lexicon, text for a semantic one",
    )
    b.add_argument("--min-units", type=int, default=100)
    b.add_argument("--max-units", type=int, default=500)
    b.add_argument("--target-units", type=int, default=300)
    b.add_argument("--text-field", default="text", help="JSONL/Parquet field holding the text")
    b.add_argument(
        "--lang",
        default=None,
        help="force this language for every input (default: declared or detected)",
    )
    add_limit_arguments(b)
    b.add_argument(
        "--overwrite", action="store_true", help="replace a build with other settings in --out"
    )
    b.add_argument(
        "--keep-work", action="store_true", help="keep .build/ (staged documents) after success"
    )
    b.add_argument("--no-progress", action="store_true")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")

    v = sub.add_parser("validate", help="check hypertrain.jsonl, the manifest and every shard")
    v.add_argument("path", help="corpus folder, or a hypertrain.jsonl file")
    v.add_argument(
        "--lexicon", default=None, help="also check the lexicon fingerprint and round trips"
    )

    i = sub.add_parser("info", help="describe a built corpus")
    i.add_argument("corpus", help="corpus folder")
    i.add_argument("--json", action="store_true")
    i.add_argument(
        "--samples", type=int, default=0, help="also show the first N scenes of each language"
    )
    i.add_argument("--lexicon", default=None, help="lexicon folder, to show the samples' glosses")


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "validate": _validate, "info": _info}[args.corpus_command](args)


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _build(args: argparse.Namespace) -> int:
    from dualmind.data.build.corpus import build_corpus
    from dualmind.data.build.options import CorpusError
    from dualmind.data.build.shard_worker import WorkerError
    from dualmind.data.build.summary import BuildSummary
    from dualmind.sources.problems import InputError

    if args.demo and args.inputs:
        return _err("give inputs or --demo, not both")
    if args.heldout and args.val_fraction is not None:
        return _err("give --heldout or --val-fraction, not both: the held-out files are the val "
                    "split")
    options = dict(
        num_shards=args.num_shards,
        workers=args.workers,
        backend=args.backend,
        errors=args.errors,
        level=args.level,
        text_vocab_size=args.text_vocab_size,
        heldout=tuple(args.heldout),
        text_tokens=args.text_tokens,
        min_units=args.min_units,
        max_units=args.max_units,
        target_units=args.target_units,
        text_field=args.text_field,
        lang=args.lang,
        overwrite=args.overwrite,
        keep_work=args.keep_work,
        progress=not args.no_progress,
        ray_address=args.ray_address,
        max_line_bytes=args.max_line_bytes,
        max_document_bytes=args.max_document_bytes,
    )
    if args.val_fraction is not None:
        options["val_fraction"] = args.val_fraction
    try:
        summary: BuildSummary = build_corpus(args.inputs or None, args.lexicon, args.out, **options)
    except (CorpusError, InputError, WorkerError) as e:
        return _err(_with_notes(e))
    except KeyboardInterrupt as e:
        print(f"interrupted {_with_notes(e)}".rstrip(), file=sys.stderr)
        return 130
    except Exception as e:  # a lexicon that fails to load names its own file
        if type(e).__name__ == "LexiconError":
            return _err(_with_notes(e))
        raise
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=1))
    else:
        print("\n".join(summary.lines()))
    return 0


def _with_notes(err: BaseException) -> str:
    """The error and its notes on one line (a failed build notes when OUT is kept to resume)."""
    return " ".join([str(err), *(f"({n})" for n in getattr(err, "__notes__", ()))]).strip()


def sample_lines(path: Path, manifest: dict, n: int, lexicon_dir: str | None) -> list[str]:
    """The first n scenes per language: text, units, and (with the lexicon) their gloss."""
    from dualmind.data.schema import read_hypertrain

    lex = None
    if lexicon_dir:
        from dualmind.lexicon.lexicon import Lexicon

        lex = Lexicon.load(lexicon_dir)
    shown: dict[str, int] = {}
    lines = []
    for rec in read_hypertrain(path / manifest["hypertrain"]["file"]):
        if rec.kind != "scene" or shown.get(rec.lang, 0) >= n:
            continue
        shown[rec.lang] = shown.get(rec.lang, 0) + 1
        text = " ".join(rec.text.split())
        lines.append(
            f"\n{rec.id} ({rec.lang}, {len(rec.hyperphrase)} units, "
            f"{len(rec.text.encode('utf-8'))} bytes)"
        )
        lines.append(f"  text:  {text[:300]}{'…' if len(text) > 300 else ''}")
        if lex is not None:
            ids = lex.from_hyperphrase(rec.hyperphrase)
            gloss = "·".join(lex.gloss(u) for u in ids[:60])
            lines.append(f"  units: {gloss}{'…' if len(ids) > 60 else ''}")
        if len(shown) == len(manifest["splits"]["train"]["langs"]) and min(shown.values()) >= n:
            break
    return lines


def validate_corpus(path: Path, lexicon=None) -> list[str]:
    """Check a corpus folder end to end; return report lines. Raises on the first problem."""
    from dualmind.data.schema import read_hypertrain
    from dualmind.data.shards import MANIFEST, ShardError, ShardSet
    from dualmind.data.text_tokenizer import load_text_tokenizer, tokenizer_fingerprint

    lines = []
    manifest = (
        json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        if (path / MANIFEST).is_file()
        else None
    )
    if manifest is None:
        raise ShardError(f"{path / MANIFEST}: missing — not a finished corpus build")
    tok = load_text_tokenizer(path / manifest["tokenizer"]["file"])
    if tokenizer_fingerprint(tok) != manifest["tokenizer"]["fingerprint"]:
        raise ShardError(f"{path / 'tokenizer.json'}: fingerprint differs from the manifest's")
    hyper = path / manifest["hypertrain"]["file"]
    # streamed side by side with the shards: records come in the shards' order
    records = read_hypertrain(hyper)
    fp = getattr(lexicon, "fingerprint", None)
    i = 0
    from dualmind.data.build.summary import split_order

    for split in split_order(manifest):
        ds = ShardSet.open(path, split, fp)
        n_units = 0
        for j, sc in enumerate(ds):
            rec = next(records, None)
            if rec is None:
                raise ShardError(f"{hyper}: ends after {i} records; the shards hold more")
            i += 1
            where = f"{split} record {j} ({rec.id})"
            if int(sc.core_bytes.sum()) != sc.n_bytes or len(sc.core) != len(rec.hyperphrase):
                raise ShardError(
                    f"{path}: {where}: core_bytes/n_units disagree with hypertrain.jsonl"
                )
            if len(sc.span) and (
                sc.span.min() < -1 or sc.span.max() >= len(sc.core) or np.any(np.diff(sc.span) < 0)
            ):
                raise ShardError(f"{path}: {where}: span indices out of range or not monotone")
            if (
                sc.kind == "scene"
                and tok.decode(sc.text.tolist(), skip_special_tokens=False) != rec.text
            ):
                raise ShardError(f"{path}: {where}: text tokens do not decode to the record's text")
            if lexicon is not None:
                if lexicon.to_hyperphrase(sc.core.tolist()) != rec.hyperphrase:
                    raise ShardError(
                        f"{path}: {where}: core ids differ from the record's hyperphrase"
                    )
                if lexicon.level == "lossless" and lexicon.decode(sc.core.tolist()) != rec.text:
                    raise ShardError(f"{path}: {where}: lossless core does not decode to the text")
            n_units += len(sc.core)
        packed = ds.packed_core()
        if (
            len(packed.core) != n_units
            or int(packed.core_bytes.sum()) != manifest["splits"][split]["bytes"]
        ):
            raise ShardError(f"{path}: packed arrays of split {split!r} disagree with its shards")
        lines.append(
            f"{split}: {len(ds)} records, {n_units} units — "
            "shards, alignment and packed arrays valid"
        )
    extra = sum(1 for _ in records)
    if extra or i != manifest["hypertrain"]["records"]:
        raise ShardError(
            f"{hyper}: {i + extra} records, the shards hold {i} and the manifest says "
            f"{manifest['hypertrain']['records']}"
        )
    lines.insert(0, f"hypertrain.jsonl: {i} records valid")
    return lines


def _validate(args: argparse.Namespace) -> int:
    from dualmind.data.schema import SchemaError, validate_file
    from dualmind.data.shards import ShardError

    path = Path(args.path)
    lexicon = None
    try:
        if args.lexicon:
            from dualmind.lexicon.lexicon import Lexicon

            lexicon = Lexicon.load(args.lexicon)
        if path.is_file():
            counts = validate_file(path)
            print(
                f"{path}: {counts['records']} records valid "
                + " ".join(f"{k}={v}" for k, v in counts.items() if k != "records")
            )
            return 0
        for line in validate_corpus(path, lexicon):
            print(line)
    except (SchemaError, ShardError, OSError, ValueError) as e:
        return _err(str(e))
    print(f"{path}: valid")
    return 0


def _info(args: argparse.Namespace) -> int:
    from dualmind.data.build.summary import BuildSummary
    from dualmind.data.shards import MANIFEST

    path = Path(args.corpus)
    mpath = path / MANIFEST
    if not mpath.is_file():
        from dualmind.data.build.state import is_unfinished

        if is_unfinished(path):
            return _err(
                f"{mpath}: missing — {path} is an unfinished corpus build: rerun the "
                "`dualmind corpus build` that made it to resume it"
            )
        return _err(f"{mpath}: missing — not a finished corpus build")
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(manifest, ensure_ascii=False, indent=1))
        return 0
    report_path = path / "build_report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    summary = BuildSummary(
        str(path),
        "built",
        manifest,
        report.get("timings", {}),
        shards_built=report.get("shards_built", 0),
        shards_reused=report.get("shards_reused", 0),
    )
    print("\n".join(summary.lines()))
    if args.samples > 0:
        print("\n".join(sample_lines(path, manifest, args.samples, args.lexicon)))
    return 0
