"""Put the pieces together: one ``plan(request)`` call -> one ``Plan`` with every number and
where it came from. The CLI, the JSON, the table and the plot all read the same ``Plan``.

The request and result types live in ``request``, turning a request into a model and run
settings in ``resolve``, and the measured/assumed figures in ``inputs``; import them from
there."""

from __future__ import annotations

from . import communication, compute, equivalence, memory, scaling_law
from . import corpus as corpus_mod
from .hardware import gpu_spec
from .inputs import measure_inputs
from .request import Plan, PlanError, PlanRequest
from .resolve import (
    check_request,
    resolve_decoder,
    resolve_run,
    results_paths,
)
from .units import parse_bytes


def _memory_at(req, shape, spec, run, gpus, checkpointing=None, precision=None):
    """FSDP memory per GPU at ``gpus`` GPUs, with the run's settings unless given."""
    return memory.fsdp_memory(
        shape,
        gpus,
        spec.memory_bytes,
        run["micro_batch"],
        run["seq_len"],
        run["checkpointing"] if checkpointing is None else checkpointing,
        run["precision"] if precision is None else precision,
        run["loss_chunk"],
    )


def _communication_at(req, core, spec, run, flops_per_token, gpus):
    """FSDP traffic against compute per micro-batch at ``gpus`` GPUs."""
    return communication.fsdp_communication(
        core.num_params(),
        flops_per_token * run["micro_batch"] * run["seq_len"],
        spec,
        gpus,
        req.mfu,
        communication.DTYPE_BYTES.get(run["param_dtype"], 2),
        communication.DTYPE_BYTES.get(run["reduce_dtype"], 4),
    )


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

    mem = _memory_at(req, shape, spec, run, n_gpus)
    alternatives = {
        f"{p}/{c}": _memory_at(req, shape, spec, run, n_gpus, c, p).to_dict()
        for p in memory.PRECISIONS
        for c in memory.CHECKPOINTING
    }
    # Optimizer steps: pure FSDP makes every GPU a data-parallel rank.
    global_batch = n_gpus * run["micro_batch"] * run["accumulate_grad_batches"] * seq_len
    run["global_batch_positions"] = global_batch
    run["steps_for_corpus"] = tokens / global_batch
    comm = _communication_at(req, core, spec, run, flops_per_token, n_gpus)
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
    # Inference keeps the core's output head: a generated symbol is drawn from the core's
    # next-symbol distribution (bridge.thinking runs the head on each new position), and the
    # same-size BPE model (third figure) generates its tokens the same way.
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
    # only runs forward over the symbols (no gradient reaches it), up to its hidden states:
    # align.core_states skips the output head, and step_flops.align_step_flops, which training logs,
    # charges the core with head=False (inference above keeps it).
    align_flops = sizes.bpe_tokens * req.epochs * decoder.flops_per_token(
        dec_ctx, seq_len, training=True
    ) + tokens * core.flops_per_token(seq_len, training=False, head=False)
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
        m = _memory_at(req, shape, spec, run, g)
        ceiling = _communication_at(req, core, spec, run, flops_per_token, g).mfu_ceiling
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
        scaling=scaling_law.prediction(scaling_law.load(req.scaling_law),
                                       train.flops + align_flops),
    )
