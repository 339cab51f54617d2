"""Put the pieces together: one ``plan(request)`` call -> one ``Plan`` with every number and
where it came from. The CLI, the JSON, the table and the plot all read the same ``Plan``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from . import communication, compute, equivalence, memory
from . import corpus as corpus_mod
from .codec_figures import codec_figures
from .hardware import PRICE_NOTE, GPUSpec, gpu_spec
from .shape import ModelShape, from_core_config
from .units import parse_bytes

DEFAULT_CLAIM = (500e9, 1500e9)  # the starting claim: "70B on hyperphrases ~ 500B-1500B GPT"
DEFAULT_DECODER = "8b"  # conf/decoder/8b.yaml, made for the 70b core
# Recipe trainer.precision -> memory policy (see memory.PRECISIONS).
PRECISION_OF_TRAINER = {
    "bf16-true": "bf16-true",
    "bf16-mixed": "fp32-master",
    "32-true": "fp32-master",
    "32": "fp32-master",
}


class PlanError(ValueError):
    """Bad planner input; ``argument`` names the CLI option it came from."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument


@dataclass
class PlanRequest:
    recipe: str | None = None  # e.g. "core_70b"
    overrides: list[str] = field(default_factory=list)  # more Hydra overrides for the recipe
    model: str | None = None  # a conf/model name, when no recipe is given
    corpus: str = "1TB"
    corpus_kind: str = "raw"  # raw text or hyperphrase files
    level: str = "lossless"  # which lexicon level's benchmark figures to fall back on
    lang: str = "en"  # and which language's
    bytes_per_symbol: float | None = None
    lexicon: str | None = None
    sample: str | None = None
    bpe_bytes_per_token: float | None = None
    gpu: str = "h100"
    gpus: int | None = None  # default: the recipe's devices x num_nodes
    mfu: float = compute.DEFAULT_MFU
    mfu_source: str | None = None  # where a measured MFU comes from (printed as provenance)
    price: float | None = None  # USD per GPU-hour; default: hardware table (an assumption)
    epochs: float = 1.0
    seq_len: int | None = None
    micro_batch: int | None = None
    checkpointing: str | None = None
    precision: str | None = None
    loss_chunk: int | None = None  # positions per chunk of the loss; None: full logits (lit.py)
    cores: int | None = None
    codec_bytes_per_s: float | None = None
    llm_tokens_per_s: float = corpus_mod.DEFAULT_LLM_TOKENS_PER_S
    decoder: str = DEFAULT_DECODER
    claim: tuple[float, float] = DEFAULT_CLAIM
    results: str | None = None  # benchmarks/RESULTS.md


@dataclass
class Plan:
    request: dict
    model: dict
    gpu: dict
    run: dict
    inputs: dict  # every assumed/measured figure with its provenance
    corpus: dict
    compute: dict
    alignment: dict  # stage align of the decoder on the same text, core frozen
    chinchilla: dict
    memory: dict
    memory_alternatives: dict
    communication: dict
    production: dict
    inference: dict
    equivalence: dict
    sweep: list = field(default_factory=list)  # days/cost/memory at other GPU counts (plot)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def resolve_run(req: PlanRequest) -> tuple[ModelShape, object, dict]:
    """(shape, CoreConfig, run settings) from a recipe (composed with Hydra) or a model name."""
    from dualmind.model.config import ConfigError as ModelConfigError
    from dualmind.model.config import CoreConfig, available_shapes

    if req.recipe:
        from dualmind.config import ConfigError, compose, list_recipes

        known = list_recipes()
        if req.recipe not in known:
            raise PlanError(
                "recipe", f"no recipe named {req.recipe!r}; available: {', '.join(known)}"
            )
        try:
            cfg = compose([f"recipe={req.recipe}", *req.overrides])
        except ConfigError as err:
            raise PlanError("recipe", str(err)) from err
        from omegaconf import OmegaConf

        core = CoreConfig.from_dict(
            OmegaConf.to_container(cfg.model, resolve=True), source=f"recipe {req.recipe}"
        )
        devices = cfg.trainer.devices if isinstance(cfg.trainer.devices, int) else None
        run = {
            "source": f"recipe={req.recipe}" + "".join(f" {o}" for o in req.overrides),
            "seq_len": int(cfg.data.seq_len),
            "micro_batch": int(cfg.data.batch_size),
            "checkpointing": str(cfg.strategy.get("activation_checkpointing", "none")),
            "precision": PRECISION_OF_TRAINER.get(str(cfg.trainer.precision), "fp32-master"),
            "trainer_precision": str(cfg.trainer.precision),
            "recipe_gpus": None if devices is None else devices * int(cfg.trainer.num_nodes),
            "accumulate_grad_batches": int(cfg.trainer.get("accumulate_grad_batches", 1)),
            "max_steps": int(cfg.trainer.max_steps),
            "param_dtype": str(cfg.strategy.get("param_dtype", "bfloat16")),
            "reduce_dtype": str(cfg.strategy.get("reduce_dtype", "float32")),
        }
        name = req.recipe
    elif req.model:
        try:
            core = CoreConfig.from_name(req.model)
        except ModelConfigError as err:
            raise PlanError(
                "--model", f"{err} (available: {', '.join(available_shapes())})"
            ) from err
        run = {
            "source": f"conf/model/{req.model}.yaml (no recipe: micro-batch 1, full checkpointing)",
            "seq_len": int(core.max_seq_len),
            "micro_batch": 1,
            "checkpointing": "full",
            "precision": "fp32-master",
            "trainer_precision": None,
            "recipe_gpus": None,
            "accumulate_grad_batches": 1,
            "max_steps": None,
            "param_dtype": "bfloat16",
            "reduce_dtype": "float32",
        }
        name = req.model
    else:
        raise PlanError("recipe", "give a recipe (recipe=core_70b) or --model NAME")
    for key in ("seq_len", "micro_batch", "checkpointing", "precision"):
        value = getattr(req, key)
        if value is not None:
            run[key] = value
            run["source"] += f", {key}={value} (command line)"
    return from_core_config(core, name), core, run


def _positive(argument: str, value, allow_none: bool = True):
    if value is None and allow_none:
        return
    if value is None or not (value > 0) or (isinstance(value, float) and not math.isfinite(value)):
        raise PlanError(argument, f"must be a positive number, got {value}")


def check_request(req: PlanRequest) -> None:
    for argument, value in (
        ("--gpus", req.gpus),
        ("--bytes-per-symbol", req.bytes_per_symbol),
        ("--bpe-bytes-per-token", req.bpe_bytes_per_token),
        ("--price", req.price),
        ("--epochs", req.epochs),
        ("--seq-len", req.seq_len),
        ("--micro-batch", req.micro_batch),
        ("--loss-chunk", req.loss_chunk),
        ("--cores", req.cores),
        ("--codec-throughput", req.codec_bytes_per_s),
        ("--llm-tokens-per-s", req.llm_tokens_per_s),
    ):
        _positive(argument, value)
    if not (0.0 < req.mfu <= 1.0):
        raise PlanError("--mfu", f"must be in (0, 1] (a fraction of peak), got {req.mfu}")
    if req.corpus_kind not in ("raw", "hyperphrase"):
        raise PlanError("--corpus-kind", f"must be raw or hyperphrase, got {req.corpus_kind!r}")
    if req.checkpointing is not None and req.checkpointing not in memory.CHECKPOINTING:
        raise PlanError("--checkpointing", f"must be one of {', '.join(memory.CHECKPOINTING)}")
    if req.precision is not None and req.precision not in memory.PRECISIONS:
        raise PlanError("--precision", f"must be one of {', '.join(memory.PRECISIONS)}")
    if req.lexicon and not req.sample:
        raise PlanError("--lexicon", "needs --sample FILE to measure bytes per symbol on")


def resolve_decoder(name: str, core_dim: int):
    """conf/decoder/NAME.yaml; a decoder made for another core width reads this one's states."""
    import dataclasses

    from dualmind.model.decoder_config import DecoderConfig

    try:
        decoder = DecoderConfig.from_name(name)
    except ValueError as err:
        raise PlanError("--decoder", str(err)) from err
    if decoder.core_dim == core_dim:
        return decoder, ""
    note = f"; core_dim {decoder.core_dim} -> {core_dim} to read this core"
    return dataclasses.replace(decoder, core_dim=core_dim), note


def results_paths(req: PlanRequest) -> tuple[Path, str]:
    """benchmarks/RESULTS.md (or --results), and how the report names it."""
    path = Path(req.results) if req.results else repo_root() / "benchmarks" / "RESULTS.md"
    try:  # relative to the repository when it lies inside it
        return path, str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return path, str(path)


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


def plan(req: PlanRequest) -> Plan:
    check_request(req)
    try:
        corpus_bytes = parse_bytes(req.corpus)
    except ValueError as err:
        raise PlanError("--corpus", str(err)) from err
    try:
        spec = gpu_spec(req.gpu)
    except KeyError as err:
        raise PlanError("--gpu", str(err)) from err
    shape, core, run = resolve_run(req)
    n_gpus = req.gpus or run["recipe_gpus"]
    if n_gpus is None:
        raise PlanError("--gpus", "give the number of GPUs (the model shape alone does not say)")
    inputs = measure_inputs(req, spec, n_gpus)
    bps = inputs["bytes_per_symbol"].value
    bpt = inputs["bpe_bytes_per_token"].value
    price = inputs["price_per_gpu_hour"].value

    sizes = corpus_mod.corpus_sizes(
        corpus_bytes, req.corpus_kind, bps, bpt, inputs["hyperphrase_utf8_bytes"].value
    )
    tokens = sizes.symbols * req.epochs
    seq_len = run["seq_len"]
    # FLOPs from CoreConfig itself (conf/model is the one source of truth for shapes)
    flops_per_token = core.flops_per_token(seq_len)
    train = compute.training_compute(
        flops_per_token, core.matmul_params(), tokens, spec, n_gpus, req.mfu, price
    )
    optimal = compute.chinchilla_optimal(core.num_params(), tokens)

    mem = memory.fsdp_memory(
        shape,
        n_gpus,
        spec.memory_bytes,
        run["micro_batch"],
        seq_len,
        run["checkpointing"],
        run["precision"],
        req.loss_chunk,
    )
    alternatives = {
        f"{p}/{c}": memory.fsdp_memory(
            shape, n_gpus, spec.memory_bytes, run["micro_batch"], seq_len, c, p, req.loss_chunk
        ).to_dict()
        for p in memory.PRECISIONS
        for c in memory.CHECKPOINTING
    }
    # Optimizer steps: pure FSDP makes every GPU a data-parallel rank.
    global_batch = n_gpus * run["micro_batch"] * run["accumulate_grad_batches"] * seq_len
    run["global_batch_positions"] = global_batch
    run["steps_for_corpus"] = tokens / global_batch
    comm = communication.fsdp_communication(
        core.num_params(),
        flops_per_token * run["micro_batch"] * seq_len,
        spec,
        n_gpus,
        req.mfu,
        communication.DTYPE_BYTES.get(run["param_dtype"], 2),
        communication.DTYPE_BYTES.get(run["reduce_dtype"], 4),
    )
    prod = corpus_mod.production(
        sizes,
        inputs["codec_bytes_per_s_per_core"],
        int(inputs["cores"].value),
        req.llm_tokens_per_s,
        price,
    )

    decoder, decoder_note = resolve_decoder(req.decoder, core.dim)
    # The decoder's self-attention spans the BPE tokens of the core's context, up to its own
    # limit; its cross-attention reads the core's whole context.
    dec_ctx = min(max(1, round(seq_len * bps / bpt)), decoder.max_seq_len)
    inference = equivalence.inference_per_byte(
        core.flops_per_token(seq_len, training=False),
        decoder.flops_per_token(dec_ctx, seq_len, training=False),
        core.flops_per_token(seq_len, training=False),
        bps,
        bpt,
        seq_len,
        f"conf/decoder/{req.decoder}.yaml ({decoder.num_params() / 1e9:.2f}B with its "
        f"cross-attention{decoder_note}), {dec_ctx:,} text tokens against {seq_len:,} core states",
    )
    # Stage align on the same text: the decoder trains over its BPE tokens while the frozen core
    # only runs forward over the symbols (no gradient reaches it).
    align_flops = sizes.bpe_tokens * req.epochs * decoder.flops_per_token(
        dec_ctx, seq_len, training=True
    ) + tokens * core.flops_per_token(seq_len, training=False)
    align_hours = compute.gpu_hours_for(align_flops, spec.peak_bf16_flops, req.mfu)
    alignment = {
        "decoder": req.decoder,
        "decoder_params": decoder.num_params(),
        "text_tokens": sizes.bpe_tokens * req.epochs,
        "flops": align_flops,
        "gpu_hours": align_hours,
        "wall_days": align_hours / n_gpus / 24.0,
        "cost": align_hours * price,
    }
    results_path, shown = results_paths(req)
    equiv = equivalence.equivalence(
        core.num_params(),
        bps,
        bpt,
        req.claim,
        equivalence.read_equal_compute_results(results_path, shown),
    )

    sweep = []
    for g in sorted({2**i for i in range(3, 15)} | {n_gpus}):
        m = memory.fsdp_memory(
            shape,
            g,
            spec.memory_bytes,
            run["micro_batch"],
            seq_len,
            run["checkpointing"],
            run["precision"],
            req.loss_chunk,
        )
        ceiling = communication.fsdp_communication(
            core.num_params(),
            flops_per_token * run["micro_batch"] * seq_len,
            spec,
            g,
            req.mfu,
            communication.DTYPE_BYTES.get(run["param_dtype"], 2),
            communication.DTYPE_BYTES.get(run["reduce_dtype"], 4),
        ).mfu_ceiling
        sweep.append(
            {
                "gpus": g,
                "days": train.gpu_hours / g / 24.0,
                "days_network_bound": train.gpu_hours * req.mfu / ceiling / g / 24.0,
                "per_gpu_bytes": m.per_gpu,
                "fits": m.fits,
            }
        )

    return Plan(
        request={k: v for k, v in req.__dict__.items()},
        model={
            **shape.to_dict(),
            "num_params": core.num_params(),
            "matmul_params": core.matmul_params(),
            "source": f"conf/model via {run['source']}",
        },
        gpu={"key": req.gpu.lower(), **spec.to_dict(), "count": n_gpus},
        run=run,
        inputs={k: v.to_dict() for k, v in inputs.items()},
        corpus={**sizes.to_dict(), "epochs": req.epochs, "trained_positions": tokens},
        compute=train.to_dict(),
        alignment=alignment,
        chinchilla={**optimal.to_dict(), "text_bytes_for_optimal": optimal.optimal_tokens * bps},
        memory=mem.to_dict(),
        memory_alternatives=alternatives,
        communication={
            **comm.to_dict(),
            "gpu_hours_at_ceiling": compute.gpu_hours_for(
                train.flops, spec.peak_bf16_flops, comm.mfu_ceiling
            ),
        },
        production=prod.to_dict(),
        inference=inference.to_dict(),
        equivalence=equiv.to_dict(),
        sweep=sweep,
    )
