"""`dualmind export`: its arguments, and which exporter runs (the package's own safetensors
layout, dualmind.checkpoint.export, or a Hugging Face Llama folder, dualmind.checkpoint.export_hf).
Apart from both, so neither imports the other's command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from dualmind.checkpoint.export import (
    ExportError,
    _resolve_checkpoint,
    export_checkpoint,
    read_export_config,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", help="a .ckpt file, a sharded (fsdp2) checkpoint folder, or a run folder "
        "(uses checkpoints/last.ckpt)"
    )
    parser.add_argument("--out", help="output folder (default: <run folder>/export)")
    parser.add_argument(
        "--lexicon", help="expected lexicon (folder or fingerprint); refuse a mismatch "
        "(--format hf: the lexicon folder, required)"
    )
    parser.add_argument(
        "--format", choices=("dualmind", "hf"), default="dualmind",
        help="dualmind: safetensors + config for dualmind; hf: a Hugging Face Llama folder "
        "(LlamaForCausalLM) with a hyperphrase tokenizer, the lexicon and the decoder; also "
        "reads a `dualmind export` folder (docs/export.md; default output <run folder>/export-hf)"
    )
    parser.add_argument("--tokenizer", help="--format hf of an align checkpoint: the decoder's "
                        "tokenizer.json, when it is not found beside the checkpoint or in its "
                        "corpus folder")
    parser.add_argument("--max-shard-size", default="5GB",
                        help="--format hf: largest weight file (e.g. 5GB, 500MB)")


def run(args: argparse.Namespace) -> int:
    import sys

    from dualmind.data.open_corpus import DataConfigError, resolve_expected_fingerprint

    if getattr(args, "format", "dualmind") == "hf":
        from dualmind.checkpoint.export_hf import run as run_hf

        return run_hf(args)
    try:
        ckpt = _resolve_checkpoint(Path(args.checkpoint))
        out = Path(args.out) if args.out else ckpt.parent.parent / "export"
        try:
            expected = resolve_expected_fingerprint(args.lexicon)
        except DataConfigError as err:
            raise ExportError(str(err).replace("data.lexicon", "--lexicon")) from err
        out = export_checkpoint(ckpt, out, expect_lexicon=expected)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    config = read_export_config(out)
    print(
        f"exported {ckpt} -> {out} (stage {config['stage']}, step {config['global_step']}, "
        f"lexicon {config['lexicon_fingerprint']})"
    )
    return 0
