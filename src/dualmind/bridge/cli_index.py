"""`dualmind index build --model DIR --corpus CORPUS_DIR --out INDEX_DIR`: embed a corpus's
scenes with the bridge's core (pooled hidden states) into a FAISS index for ``--retrieve k``."""

from __future__ import annotations

import argparse
import time

from dualmind.bridge.cli_common import add_model_arguments, fail, load_bridge
from dualmind.bridge.errors import BridgeError
from dualmind.bridge.retrieval import POOLED_LAYER


def pooled_layer(text: str) -> int | None:
    """--layer: a block number (0 = the symbol embeddings) or 'final' (the final-norm states)."""
    if text == "final":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a block number or 'final', got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = sub.add_parser("build", help="embed a corpus's scenes into an index folder")
    add_model_arguments(build)
    build.add_argument("--corpus", required=True, help="corpus folder (dualmind corpus build)")
    build.add_argument("--out", required=True, help="index folder to write")
    build.add_argument("--splits", default="train,val", help="comma-separated (default both)")
    build.add_argument("--kinds", default="scene", help="record kinds to index (scene,qa,pair)")
    build.add_argument("--limit", type=int, default=None, help="index at most N records")
    build.add_argument("--batch-size", type=int, default=16)
    build.add_argument("--layer", type=pooled_layer, default=POOLED_LAYER, metavar="K|final",
                       help="pool the residual stream after block K (default 0: the symbol "
                            "embeddings, a bag of symbols) or 'final': the final-norm states")
    info = sub.add_parser("info", help="what an index folder holds")
    info.add_argument("index", help="index folder")


def run(args: argparse.Namespace) -> int:
    from dualmind.bridge.retrieval import SceneIndex, corpus_records

    try:
        if args.action == "info":
            index = SceneIndex.load(args.index)
            pooled = "final-norm states" if index.layer is None else f"layer {index.layer}"
            print(f"{args.index}: {len(index)} scenes, dim {index.dim} ({pooled}), core "
                  f"{index.core_fingerprint}, lexicon {str(index.lexicon_fingerprint)[:16]}")
            return 0
        bridge = load_bridge(args)
        records, fingerprint = corpus_records(args.corpus, tuple(args.splits.split(",")),
                                              tuple(args.kinds.split(",")), args.limit)
        if fingerprint != bridge.lexicon.fingerprint:
            raise BridgeError(f"corpus {args.corpus} was built with lexicon "
                              f"{str(fingerprint)[:16]}, the model's is "
                              f"{bridge.lexicon.fingerprint[:16]}")
        t0 = time.perf_counter()
        index = SceneIndex.build(bridge.core, records, bridge.core_fingerprint,
                                 bridge.lexicon.fingerprint, args.batch_size,
                                 layer=args.layer)
        index.save(args.out)
    except BridgeError as err:
        return fail("index", err)
    print(f"indexed {len(index)} scenes of {args.corpus} in {time.perf_counter() - t0:.1f} s "
          f"-> {args.out} (core {bridge.core_fingerprint})")
    return 0
