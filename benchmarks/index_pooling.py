"""Which states should a retrieval index pool? Recall of planted facts per core and layer.

    .venv/bin/python benchmarks/index_pooling.py runs/demo/lexicon-semantic runs/demo/corpus \
        runs/demo/core_mini/checkpoints/last.ckpt [more core checkpoints ...] \
        [--layers final,0,1,3] [--planted my_facts.tsv] [--distractors 400] [--no-write]

For each core and each layer: the planted facts (generation.py's eight, or --planted: one
`fact<TAB>question` per line) are indexed among --distractors scenes of the corpus, and each
question searches the index (`dualmind index build`'s pooling: SceneIndex with that layer;
`final` = the final-norm states, 0 = the symbol embeddings, k = the residual stream after block
k). Reported: recall@1 and @3 of the fact, and the range of the top hit's cosine (all near 1.000:
the pooled vectors barely differ, whatever ranks first). The questions share content words with
their facts, so a bag of symbols (layer 0) is favoured by construction; the table says how much
of that match each layer keeps. The cores must share the lexicon.

Results go to benchmarks/RESULTS.md between <!-- index_pooling:start --> and
<!-- index_pooling:end -->.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from generation import PLANTED  # benchmarks/ is on sys.path when run as a script
from results_md import write_section


def read_planted(path: Path) -> list[tuple[str, str]]:
    """(fact, question) pairs from a TSV file, one pair a line; blank lines are skipped."""
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not all(f.strip() for f in fields):
            sys.exit(f"error: {path}:{n}: expected `fact<TAB>question`, got {line[:80]!r}")
        pairs.append((fields[0].strip(), fields[1].strip()))
    if not pairs:
        sys.exit(f"error: {path}: no fact<TAB>question lines")
    return pairs


def parse_layers(text: str) -> list[int | None]:
    try:
        return [None if x == "final" else int(x) for x in text.split(",")]
    except ValueError:
        sys.exit(f"error: --layers {text}: comma-separated block numbers or 'final'")


def recall(core, lexicon, planted, records, layer: int | None) -> dict:
    from dualmind.bridge.retrieval import SceneIndex, SceneRecord

    facts = [SceneRecord(f"planted:{i}", lexicon.encode(f), f) for i, (f, _) in enumerate(planted)]
    t0 = time.perf_counter()
    index = SceneIndex.build(core, facts + records, "benchmark", lexicon.fingerprint, layer=layer)
    build_s = time.perf_counter() - t0
    hits1 = hits3 = 0
    top = []
    for i, (_, question) in enumerate(planted):
        found = index.search(core, lexicon.encode(question), 3)
        keys = [h.key for h in found]
        hits1 += keys[0] == f"planted:{i}"
        hits3 += f"planted:{i}" in keys
        top.append(found[0].score)
    n = len(planted)
    return {"recall1": hits1 / n, "recall3": hits3 / n, "top": (min(top), max(top)),
            "build_s": build_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lexicon", type=Path, help="the cores' lexicon folder")
    parser.add_argument("corpus", type=Path, help="corpus folder: where the distractors come from")
    parser.add_argument("cores", type=Path, nargs="+", help="core checkpoints (stage core)")
    parser.add_argument("--layers", default="final,0,1,3")
    parser.add_argument("--planted", type=Path, default=None,
                        help="fact<TAB>question lines (default: generation.py's eight)")
    parser.add_argument("--distractors", type=int, default=400)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = parser.parse_args(argv)

    from dualmind.bridge.retrieval import POOLED_LAYER, corpus_records
    from dualmind.checkpoint.frozen_core import core_state_from
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    lexicon = Lexicon.load(args.lexicon)
    planted = read_planted(args.planted) if args.planted else [(f, q) for f, q, _ in PLANTED]
    records, _ = corpus_records(args.corpus, ("train", "val"), ("scene",), args.distractors)
    layers = parse_layers(args.layers)
    lines = [f"{len(planted)} planted facts among {len(records)} scenes of {args.corpus}; each "
             "question shares content words with its fact. Top cosine: the range over the "
             f"questions of the first hit's score. Default pooling: layer {POOLED_LAYER}.", "",
             "| core | steps | pooled states | recall@1 | recall@3 | top cosine | index built in |",
             "|---|---:|---|---:|---:|---|---:|"]
    for path in args.cores:
        state, meta = core_state_from(path, lexicon.fingerprint)
        core = HyperCore(CoreConfig.from_dict(meta["model"], source=f"{path} metadata")).eval()
        core.load_state_dict(state)
        # the step a .ckpt records (mapped, not read again); an export folder records none
        steps = (torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(
            "global_step", "?") if path.is_file() else "?")
        for layer in layers:
            r = recall(core, lexicon, planted, records, layer)
            name = "final-norm" if layer is None else f"layer {layer}"
            row = (f"| {path} | {steps} | {name} | {r['recall1']:.2f} | {r['recall3']:.2f} | "
                   f"{r['top'][0]:.3f}-{r['top'][1]:.3f} | {r['build_s']:.1f} s |")
            print(row, flush=True)
            lines.append(row)
    text = "\n".join(lines)
    if not args.no_write:
        write_section("index_pooling", "## Which states a retrieval index pools "
                      "(`benchmarks/index_pooling.py`)\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
