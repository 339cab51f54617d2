"""`dualmind viz`: write the layer report for a prompt and print where it is and how big."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _indices(option: str):
    def parse(value: str) -> list[int]:
        try:
            return [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} takes comma-separated integers like 0,3, got {value!r}") from None
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="a core or align .ckpt, its run folder, or an export folder")
    text = parser.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the prompt; blank lines separate packed documents")
    text.add_argument("--text-file", help="read the prompt from this UTF-8 file")
    parser.add_argument("--out", required=True, help="report folder (index.html is written there)")
    parser.add_argument("--layers", type=_indices("--layers"), default=None,
                        help="core layers to draw, e.g. 0,3 (default: up to 6 spread out)")
    parser.add_argument("--heads", type=_indices("--heads"), default=None,
                        help="attention heads to draw, e.g. 0,1 (default: the first 4)")
    parser.add_argument("--positions", type=_indices("--positions"), default=None,
                        help="logit-lens positions (symbol indices; default: up to 12)")
    parser.add_argument("--lexicon", default=None,
                        help="the core's lexicon folder (default: the run's data.lexicon, or the "
                             "lexicon beside its corpus with the checkpoint's fingerprint)")
    parser.add_argument("--compare", default=None,
                        help="another checkpoint of the same shape, or an adapter folder")
    parser.add_argument("--window", type=int, default=None,
                        help="most symbols to show (default 96; longer inputs are cut, noted)")


def run(args: argparse.Namespace) -> int:
    from dualmind.viz.load import VizError
    from dualmind.viz.report import WINDOW, write_report

    text = args.text
    if args.text_file is not None:
        text = Path(args.text_file).read_text(encoding="utf-8")
    try:
        index = write_report(args.checkpoint, text, args.out, layers=args.layers,
                             heads=args.heads, positions=args.positions,
                             lexicon_dir=args.lexicon, compare=args.compare,
                             window=args.window or WINDOW)
    except (VizError, ValueError, OSError) as err:
        print(f"dualmind viz: {err}", file=sys.stderr)
        return 2
    size = index.stat().st_size
    print(f"report: {index} ({size / 1024:.0f} KiB)")
    return 0
