"""`dualmind adapt`: what to do with trained LoRA adapters.

    dualmind adapt info  runs/bridge_lora/adapter
    dualmind adapt merge runs/bridge_lora/adapter --core runs/demo/core_mini/checkpoints/last.ckpt \
        --out runs/bridge_lora/merged

merge: load the base core (a stage-core .ckpt or `dualmind export` folder), check it is the core
the adapter was trained on (weights fingerprint), fold the LoRA deltas into its weights and write
a `dualmind export` folder. Training itself is `python train.py recipe=bridge_lora ...`.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="what an adapter folder holds and which core it fits")
    info.add_argument("adapter", help="an adapter folder (<run_dir>/adapter of stage lora)")
    merge = sub.add_parser("merge", help="fold an adapter into its core; write an export folder")
    merge.add_argument("adapter", help="an adapter folder (<run_dir>/adapter of stage lora)")
    merge.add_argument("--core", required=True,
                       help="the base core: a stage-core .ckpt or a `dualmind export` folder")
    merge.add_argument("--out", required=True, help="output folder (a `dualmind export` folder)")


def run(args: argparse.Namespace) -> int:
    from dualmind.adapters.lora import AdapterError, read_adapter_meta

    try:
        if args.action == "info":
            meta = read_adapter_meta(args.adapter)
            lora = meta.get("lora") or {}
            print(f"adapter {args.adapter}")
            print(f"  core fingerprint    {meta.get('core_fingerprint')}")
            print(f"  lexicon fingerprint {meta.get('lexicon_fingerprint')}")
            print(f"  trained on          {meta.get('core_checkpoint')} "
                  f"({meta.get('global_step')} steps)")
            print(f"  LoRA                r={lora.get('r')} alpha={lora.get('alpha')} "
                  f"targets={lora.get('targets')} layers={lora.get('layers') or 'all'}")
            print(f"  trained parameters  {meta.get('trainable_parameters')}")
            return 0
        from dualmind.adapters.merged_export import merge_to_export

        out = merge_to_export(args.adapter, args.core, args.out)
    except AdapterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"merged {args.adapter} into {args.core} -> {out} (a `dualmind export` folder)")
    return 0
