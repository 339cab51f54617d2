"""Every figure the planner's arithmetic takes, measured, given or assumed, each with its
provenance."""

from __future__ import annotations

from pathlib import Path

from . import compute
from . import corpus as corpus_mod
from .codec_figures import codec_figures
from .hardware import PRICE_NOTE, GPUSpec
from .request import PlanError, PlanRequest
from .resolve import results_paths


def measure_inputs(req: PlanRequest, spec: GPUSpec, n_gpus: int) -> dict:
    """Every figure the arithmetic takes, with its provenance (measured/given/assumption)."""
    M = corpus_mod.Measured
    sample_text = label = None
    if req.sample:
        try:
            sample_text = corpus_mod.read_sample(req.sample)
        except (FileNotFoundError, ValueError) as err:
            raise PlanError("--sample", str(err)) from err
        label = Path(req.sample).name
    lexicon_m = None
    if req.lexicon:
        if not Path(req.lexicon).is_dir():
            raise PlanError("--lexicon", f"{req.lexicon} is not a directory")
        try:
            lexicon_m = corpus_mod.measure_with_lexicon(req.lexicon, sample_text, label)
        except (ValueError, OSError) as err:  # LexiconError is a ValueError
            raise PlanError("--lexicon", f"{req.lexicon}: {err}") from err

    results, shown = results_paths(req)
    try:
        fallback = codec_figures(req.level, req.lang, results, shown)
    except ValueError as err:
        raise PlanError("--level" if "level" in str(err) else "--lang", str(err)) from err

    if req.bytes_per_symbol is not None:
        bps = M(req.bytes_per_symbol, "given: --bytes-per-symbol")
    elif lexicon_m is not None:
        bps = lexicon_m.bytes_per_symbol
    elif sample_text is not None:
        bps = corpus_mod.word_proxy_bytes_per_symbol(sample_text, label)
    else:
        bps = fallback["bytes_per_symbol"]

    if req.bpe_bytes_per_token is not None:
        bpt = M(req.bpe_bytes_per_token, "given: --bpe-bytes-per-token")
    else:
        bpt = None
        if sample_text is not None:
            bpt = corpus_mod.measure_bpe_bytes_per_token(sample_text, label)
        if bpt is None:
            bpt = fallback["bpe_bytes_per_token"]
            if sample_text is not None:  # say why the sample was not used
                bpt = M(bpt.value, bpt.provenance + " (tiktoken or its o200k cache not found)")

    if lexicon_m is not None:
        hp_utf8 = lexicon_m.hyperphrase_utf8_bytes
    else:
        hp_utf8 = fallback["hyperphrase_utf8_bytes"]

    if req.codec_bytes_per_s is not None:
        codec = M(req.codec_bytes_per_s, "given: --codec-throughput")
    elif lexicon_m is not None:
        codec = lexicon_m.codec_bytes_per_s_per_core
    else:
        codec = fallback["codec_bytes_per_s_per_core"]

    price = (
        M(req.price, "given: --price")
        if req.price is not None
        else M(spec.price_per_hour, PRICE_NOTE)
    )
    cores = (
        M(req.cores, "given: --cores")
        if req.cores is not None
        else M(
            n_gpus * spec.host_cores_per_gpu,
            f"the GPU nodes' own CPUs: {spec.host_cores_per_gpu} cores per GPU in the "
            f"vendor's 8-GPU server x {n_gpus} GPUs",
        )
    )
    if req.mfu_source:
        mfu = M(req.mfu, f"measured: {req.mfu_source}")
    elif req.mfu == compute.DEFAULT_MFU:
        mfu = M(req.mfu, compute.MFU_NOTE)
    else:
        mfu = M(
            req.mfu, "given: --mfu (an assumption unless --mfu-source says where it was measured)"
        )
    return {
        "bytes_per_symbol": bps,
        "bpe_bytes_per_token": bpt,
        "hyperphrase_utf8_bytes": hp_utf8,
        "codec_bytes_per_s_per_core": codec,
        "price_per_gpu_hour": price,
        "cores": cores,
        "mfu": mfu,
        "llm_tokens_per_s": M(
            req.llm_tokens_per_s,
            corpus_mod.DEFAULT_LLM_NOTE
            if req.llm_tokens_per_s == corpus_mod.DEFAULT_LLM_TOKENS_PER_S
            else "given: --llm-tokens-per-s",
        ),
    }
