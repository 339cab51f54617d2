"""`dualmind <command>`: everything except training (which is `python train.py`).

Each command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so
``dualmind --help`` stays fast and a broken optional dependency of one command
never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "lexicon": ("dualmind.lexicon.cli", "build and use a hyperlexicon (text <-> hyperphrases)"),
    "corpus": ("dualmind.data.cli", "build hypertrain.jsonl and packed training shards"),
    "export": ("dualmind.checkpoint.export_cli", "export a checkpoint (safetensors + config JSON)"),
    "eval": ("dualmind.evaluate.cli", "system bits per byte of core + decoder (or a BPE baseline)"),
    "plan": ("dualmind.plan.cli", "what a training run costs and what it buys"),
    "generate": ("dualmind.bridge.cli_generate", "the core thinks, the decoder answers"),
    "chat": ("dualmind.bridge.cli_chat", "chat in the terminal through the bridge (/reset, /quit)"),
    "index": ("dualmind.bridge.cli_index", "retrieval index of scenes (pooled core states)"),
    "adapt": ("dualmind.adapters.cli", "LoRA adapters: info, merge into the core (export)"),
    "viz": ("dualmind.viz.cli", "HTML report of a prompt inside core and decoder"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualmind",
        description="dualmind: a hyper-core on hyperphrases and a language decoder that reads it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    name = argv[0]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose from: {', '.join(COMMANDS)}")
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    command_parser = argparse.ArgumentParser(prog=f"dualmind {name}", description=help_text)
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
