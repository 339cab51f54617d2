"""`dualmind generate "question" --model DIR`: one answer, streamed, optionally with the thought.

    dualmind generate "What is the night full of?" --model runs/demo/bridge --show-thought
    dualmind generate "..." --model runs/demo/bridge --retrieve 3 --index runs/demo/index
"""

from __future__ import annotations

import argparse

from dualmind.bridge.cli_common import (
    add_model_arguments,
    add_sampling_arguments,
    fail,
    load_bridge,
    sampling_options,
)
from dualmind.bridge.errors import BridgeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="the question (text, or a hyperphrase)")
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--timings", action="store_true", help="print the timings after")


def run(args: argparse.Namespace) -> int:
    try:
        bridge = load_bridge(args)
        for note in bridge.notes:
            print(f"note: {note}")

        def thought(gloss: str) -> None:
            print(f"[thought] {gloss or '(no symbols)'}", flush=True)

        answer = bridge.generate(args.prompt, show_thought=args.show_thought, on_thought=thought,
                                 on_text=lambda s: print(s, end="", flush=True),
                                 **sampling_options(args))
    except BridgeError as err:
        return fail("generate", err)
    print()
    for hit in answer.retrieved:
        print(f"[retrieved {hit.rank + 1}] ({hit.score:.3f}) {hit.text[:120]}")
    for note in answer.notes:
        print(f"note: {note}")
    if args.timings:
        print(answer.timings.summary())
    return 0
