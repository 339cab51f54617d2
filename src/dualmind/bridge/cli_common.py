"""Options and loading shared by `dualmind generate`, `dualmind chat` and `dualmind index`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dualmind.bridge.errors import BridgeError


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="a bridge folder (Bridge.save), or an align checkpoint / run folder "
                             "/ export folder together with --lexicon")
    parser.add_argument("--lexicon", default=None, help="lexicon folder (with a checkpoint)")
    parser.add_argument("--adapter", default=None, help="adapter folder (dualmind.adapters)")
    parser.add_argument("--tokenizer", default=None,
                        help="the decoder's tokenizer.json (default: found beside the model)")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("sampling")
    g.add_argument("--max-symbols", type=int, default=32, help="longest thought (core symbols)")
    g.add_argument("--max-tokens", type=int, default=None,
                   help="longest answer (text tokens; default: 4 per unit the decoder reads + "
                        "16, room for the whole thought: the answer ends where it does)")
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    g.add_argument("--render-temperature", type=float, default=None,
                   help="the decoder's temperature when it says the thought (default: "
                        "--temperature; 0 = greedy)")
    g.add_argument("--top-k", type=int, default=50, help="0 = off")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling, e.g. 0.9")
    g.add_argument("--seed", type=int, default=None, help="reproducible sampling")
    g.add_argument("--read", default=None, choices=("turn", "thought", "context"),
                   help="core states the decoder reads (default: the thought for a decoder that "
                        "follows its text through the units, else the question and the thought)")
    g.add_argument("--show-thought", action="store_true",
                   help="print the core's symbols glossed before the answer")
    g.add_argument("--retrieve", type=int, default=0, metavar="K",
                   help="put the K nearest scenes of --index into the core's context")
    g.add_argument("--index", default=None, help="index folder (dualmind index build)")


def sampling_options(args: argparse.Namespace) -> dict:
    return {"max_symbols": args.max_symbols, "max_tokens": args.max_tokens,
            "temperature": args.temperature, "render_temperature": args.render_temperature,
            "top_k": args.top_k or None, "top_p": args.top_p,
            "seed": args.seed, "read": args.read, "retrieve": args.retrieve}


def load_bridge(args: argparse.Namespace):
    from dualmind.bridge.bridge import Bridge
    from dualmind.bridge.hf_folder import is_hf_bridge

    model = Path(args.model)
    if (model / "bridge.json").is_file() or is_hf_bridge(model):  # both bring their lexicon
        if args.lexicon or args.adapter:
            raise BridgeError(f"{model} is a bridge folder: it brings its own lexicon and "
                              "adapter (drop --lexicon/--adapter)")
        bridge = Bridge.from_pretrained(model)
    elif args.lexicon is None:
        raise BridgeError(f"{model}: no bridge.json here; pass a bridge folder, or a checkpoint "
                          "with --lexicon LEXICON_DIR")
    else:
        bridge = Bridge.from_checkpoints(args.lexicon, model, args.adapter, args.tokenizer)
    if getattr(args, "index", None):
        from dualmind.bridge.retrieval import SceneIndex

        bridge.index = SceneIndex.load(args.index)
        bridge.index.check_core(bridge.core_fingerprint)
    elif getattr(args, "retrieve", 0):
        raise BridgeError(f"--retrieve {args.retrieve} needs --index DIR")
    return bridge


def fail(command: str, err: Exception) -> int:
    print(f"dualmind {command}: {err}", file=sys.stderr)
    return 2
