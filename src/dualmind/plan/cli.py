"""``dualmind plan``: what a training run costs and what it buys.

    dualmind plan recipe=core_70b --corpus 1TB --gpu h100 --gpus 256
    dualmind plan --model 200b --corpus 500GB --gpu b200 --gpus 512 --mfu 0.35 --json
    python -m dualmind.plan.cli recipe=core_200b --corpus 1TB --gpu h100 --gpus 256 --plot p.png

Sizes: KB/MB/GB/TB/PB are decimal (1TB = 10^12 bytes), KiB/MiB/GiB/TiB/PiB binary (1TiB = 2^40).
Every assumed figure is printed with its provenance; measure instead with --lexicon/--sample.
Bad input exits with status 2 and a message naming the argument.
"""

from __future__ import annotations

import argparse
import sys

from . import compute, corpus
from .hardware import GPUS
from .planner import plan
from .request import DEFAULT_CLAIM, DEFAULT_DECODER, PlanError, PlanRequest
from .units import SizeError, parse_bytes, parse_count


def _size(text: str) -> str:
    try:
        parse_bytes(text)
    except SizeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _bytes_per_s(text: str) -> float:
    try:
        return float(parse_bytes(text))
    except SizeError as err:
        raise argparse.ArgumentTypeError(f"{err} (bytes per second per core, e.g. 5MB)") from None


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _nonnegative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive count, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _mfu(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"MFU is a fraction of peak in (0, 1], got {text}")
    return value


def _claim(text: str) -> tuple[float, float]:
    try:
        low, high = (parse_count(x) for x in text.replace("–", "-").split("-", 1))
    except (ValueError, SizeError):
        raise argparse.ArgumentTypeError(
            f"expected LOW-HIGH parameter counts like 500B-1500B, got {text!r}"
        ) from None
    return (low, high)


# (name, help, other add_argument settings): every option of ``dualmind plan``, in help order.
_OPTIONS: tuple[tuple[str, str, dict], ...] = (
    ("overrides", "the recipe (recipe=core_70b) and any Hydra overrides of it",
     dict(nargs="*", metavar="recipe=NAME [KEY=VALUE ...]")),
    ("--model", "a conf/model shape (mini, 125m, 1b, 8b, 70b, 200b) instead of a recipe", {}),
    ("--corpus", "corpus size, e.g. 1TB, 750GB, 2TiB (default 1TB)",
     dict(type=_size, default="1TB")),
    ("--corpus-kind", "--corpus counts raw text bytes (default) or hyperphrase file bytes",
     dict(choices=("raw", "hyperphrase"), default="raw")),
    ("--bytes-per-symbol", "text bytes per hyperphrase symbol "
     "(default: measured, else the lexicon benchmark's figure)", dict(type=_positive_float)),
    ("--level", "lexicon level of the benchmark figures used when nothing is measured",
     dict(choices=("lossless", "semantic"), default="lossless")),
    ("--lang", "language of the benchmark figures used when nothing is measured",
     dict(choices=("en", "ru"), default="en")),
    ("--lexicon", "a lexicon directory to measure bytes per symbol and codec speed with", {}),
    ("--sample", "a text (or .jsonl with 'text') sample to measure on", {}),
    ("--bpe-bytes-per-token", "text bytes per reference BPE token (default: tiktoken o200k on "
     "--sample, else the lexicon benchmark's figure)", dict(type=_positive_float)),
    ("--gpu", "GPU type (default h100)", dict(choices=sorted(GPUS), default="h100")),
    ("--gpus", "number of GPUs (default: the recipe's devices x nodes)",
     dict(type=_positive_int)),
    ("--mfu", f"model FLOPs utilisation in (0, 1] (default {compute.DEFAULT_MFU}, an assumption)",
     dict(type=_mfu, default=compute.DEFAULT_MFU)),
    ("--mfu-source",
     "where --mfu was measured (e.g. 'torchtitan 70B, 64 x H100, step 500'); printed",
     dict(metavar="TEXT")),
    ("--price", "USD per GPU-hour (default: an assumed list price)", dict(type=_positive_float)),
    ("--epochs", "passes over the corpus (default 1)", dict(type=_positive_float, default=1.0)),
    ("--seq-len", "override the recipe's sequence length", dict(type=_positive_int)),
    ("--micro-batch", "override the recipe's micro-batch", dict(type=_positive_int)),
    ("--checkpointing", "override the recipe's activation checkpointing",
     dict(choices=("none", "full", "selective"))),
    ("--precision", "override the memory policy derived from the recipe's trainer.precision",
     dict(choices=("fp32-master", "bf16-fp32-adam", "bf16-true"))),
    ("--loss-chunk", "compute the loss N positions at a time "
     "(dualmind.model.loss.chunked_cross_entropy; 0: full logits); default: the recipe's "
     "strategy.loss_chunk, as training does",
     dict(type=_nonnegative_int, metavar="N")),
    ("--cores", "CPU cores for the codec (default: the GPU nodes' cores)",
     dict(type=_positive_int)),
    ("--codec-throughput",
     "codec speed per core in bytes/s, e.g. 5MB (benchmarks/codec.py measures it)",
     dict(type=_bytes_per_s)),
    ("--llm-tokens-per-s",
     "generated tokens/s per GPU for the LLM-rewrite comparison (assumption)",
     dict(type=_positive_float, default=corpus.DEFAULT_LLM_TOKENS_PER_S)),
    ("--decoder", f"conf/decoder shape of the language decoder (default {DEFAULT_DECODER})",
     dict(default=DEFAULT_DECODER)),
    ("--claim", "the claimed equivalent GPT size range (default 500B-1500B)",
     dict(type=_claim, default=DEFAULT_CLAIM)),
    ("--results", "benchmarks/RESULTS.md with the equal-compute study", {}),
    ("--scaling-law", "the scaling study's fitted laws (default: the package's "
     "scaling_law.json, from benchmarks/scaling_report.py)", dict(metavar="JSON")),
    ("--json", "print JSON instead of the table", dict(action="store_true")),
    ("--plot", "write a plot to this PNG file", dict(metavar="PNG")),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (parser.description or "") + "\n\n" + __doc__.split("\n\n", 1)[1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for name, help_text, settings in _OPTIONS:
        parser.add_argument(name, help=help_text, **settings)


def request_from_args(args: argparse.Namespace) -> PlanRequest:
    recipe, overrides = None, []
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise PlanError("overrides", f"expected KEY=VALUE (e.g. recipe=core_70b), got {item!r}")
        if key == "recipe":
            recipe = value
        else:
            overrides.append(item)
    if recipe and args.model:
        raise PlanError("--model", "give either recipe=NAME or --model, not both")
    if overrides and not recipe:
        raise PlanError("overrides", "KEY=VALUE overrides need a recipe=NAME")
    return PlanRequest(
        recipe=recipe,
        overrides=overrides,
        model=args.model,
        corpus=args.corpus,
        corpus_kind=args.corpus_kind,
        level=args.level,
        lang=args.lang,
        bytes_per_symbol=args.bytes_per_symbol,
        lexicon=args.lexicon,
        sample=args.sample,
        bpe_bytes_per_token=args.bpe_bytes_per_token,
        gpu=args.gpu,
        gpus=args.gpus,
        mfu=args.mfu,
        mfu_source=args.mfu_source,
        price=args.price,
        epochs=args.epochs,
        seq_len=args.seq_len,
        micro_batch=args.micro_batch,
        checkpointing=args.checkpointing,
        precision=args.precision,
        loss_chunk=args.loss_chunk,
        cores=args.cores,
        codec_bytes_per_s=args.codec_throughput,
        llm_tokens_per_s=args.llm_tokens_per_s,
        decoder=args.decoder,
        claim=args.claim,
        results=args.results,
        scaling_law=args.scaling_law,
    )


def run(args: argparse.Namespace) -> int:
    from .report import print_table, to_json
    from .report_plot import save_plot

    try:
        result = plan(request_from_args(args)).to_dict()
    except PlanError as err:
        print(f"dualmind plan: error: argument {err}", file=sys.stderr)
        return 2
    if args.json:
        print(to_json(result))
    else:
        print_table(result)
    if args.plot:
        path = save_plot(result, args.plot)
        print(f"plot written to {path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dualmind plan", description="what a training run costs and what it buys"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
