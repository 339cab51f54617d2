"""A ``Plan`` as (section, quantity, value, basis) rows: what the table shows, one function
per section."""

from __future__ import annotations

from .units import human_bytes, human_count, human_gib


def _sci(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.2e}"


def _duration(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.1f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def _money(x: float) -> str:
    return f"${x / 1e6:,.2f}M" if x >= 1e6 else f"${x:,.0f}"


def _section(name: str, *items: tuple[str, str, str]) -> list[tuple[str, str, str, str]]:
    """(quantity, value, basis) items -> rows of the section ``name``."""
    return [(name, quantity, value, basis) for quantity, value, basis in items]


def rows(p: dict) -> list[tuple[str, str, str, str]]:
    """(section, quantity, value, basis) rows — the table, flat, so tests can read it too."""
    return (
        _run_rows(p)
        + _corpus_rows(p)
        + _training_rows(p)
        + _chinchilla_rows(p)
        + _memory_rows(p)
        + _communication_rows(p)
        + _production_rows(p)
        + _inference_rows(p)
        + _equivalence_rows(p)
    )


def _run_rows(p: dict) -> list[tuple[str, str, str, str]]:
    i, run, gpu, model = p["inputs"], p["run"], p["gpu"], p["model"]
    max_steps = (f"; the recipe's trainer.max_steps is {run['max_steps']:,}" if run["max_steps"]
                 else "")
    return _section(
        "run",
        ("model",
         f"{model['name']}: {human_count(model['num_params'])} params ({model['num_params']:,})",
         "conf/model, closed form = meta build"),
        ("recipe settings",
         f"seq_len {run['seq_len']}, micro-batch {run['micro_batch']}, "
         f"checkpointing {run['checkpointing']}, precision {run['precision']}",
         run["source"]),
        ("hardware", f"{gpu['count']} x {gpu['name']}", gpu["source"]),
        ("global batch, optimizer steps",
         f"{human_count(run['global_batch_positions'])} positions/step, "
         f"{run['steps_for_corpus']:,.0f} steps for the corpus",
         f"{gpu['count']} GPUs x micro-batch {run['micro_batch']} x accumulate "
         f"{run['accumulate_grad_batches']} x {run['seq_len']}" + max_steps),
        ("MFU", f"{i['mfu']['value']:.2f}", i["mfu"]["provenance"] + _recompute_note(p)),
        ("price per GPU-hour", f"${i['price_per_gpu_hour']['value']:.2f}",
         i["price_per_gpu_hour"]["provenance"]),
    )


def _corpus_rows(p: dict) -> list[tuple[str, str, str, str]]:
    c = p["corpus"]
    bps, bpt = p["inputs"]["bytes_per_symbol"], p["inputs"]["bpe_bytes_per_token"]
    return _section(
        "corpus",
        ("given", f"{human_bytes(c['given_bytes'])} ({c['kind']})", "--corpus"),
        ("text bytes per symbol", f"{bps['value']:.3g}", bps["provenance"]),
        ("text bytes per BPE token", f"{bpt['value']:.3g}", bpt["provenance"]),
        ("symbols (core positions)", human_count(c["symbols"]),
         f"text {human_bytes(c['text_bytes'])} / bytes per symbol"),
        ("same text in BPE tokens", human_count(c["bpe_tokens"]), "text / bytes per BPE token"),
    )


def _training_rows(p: dict) -> list[tuple[str, str, str, str]]:
    c, comp, gpu, al = p["corpus"], p["compute"], p["gpu"], p["alignment"]
    return _section(
        "training",
        ("positions trained", human_count(c["trained_positions"]), f"{c['epochs']:g} epoch(s)"),
        ("FLOPs per position", _sci(comp["flops_per_token"]),
         f"6N + 12·L·d·T at T={p['run']['seq_len']} (torchtitan / PaLM App. B)"),
        ("FLOPs (6ND only)", _sci(comp["flops_6nd"]), "6 x matmul params x positions"),
        ("FLOPs (with attention)", _sci(comp["flops"]), ""),
        ("GPU-hours", f"{comp['gpu_hours']:,.0f}", "FLOPs / (peak dense bf16 x MFU)"),
        ("wall-clock", f"{comp['wall_days']:.1f} days", f"on {gpu['count']} GPUs, no downtime"),
        ("cost", _money(comp["cost"]), "GPU-hours x price"),
        ("then the decoder (stage align, same text)",
         f"{al['flops']:.2e} FLOPs, {al['gpu_hours']:,.0f} GPU-hours, "
         f"{al['wall_days']:.1f} days, {_money(al['cost'])}",
         f"conf/decoder/{al['decoder']}: 6N + attention per BPE token, plus the "
         "frozen core's forward to its states (no output head) per symbol"),
    )


def _chinchilla_rows(p: dict) -> list[tuple[str, str, str, str]]:
    ch = p["chinchilla"]
    trained = "over-trained" if ch["ratio"] > 1 else (
        "under-trained (less data than compute-optimal)")
    return _section(
        "chinchilla",
        ("compute-optimal positions", human_count(ch["optimal_tokens"]),
         "20 x params (Hoffmann et al. 2022)"),
        ("this run / optimal", f"{ch['ratio']:.2f}x", trained),
        ("text for a compute-optimal run", human_bytes(ch["text_bytes_for_optimal"]),
         "compute-optimal positions x bytes per symbol"),
        ("compute-optimal model for this compute",
         f"{human_count(ch['optimal_params_for_compute'])} params on "
         f"{human_count(ch['optimal_tokens_for_compute'])} positions",
         "N = sqrt(6ND / 120), D = 20 N"),
    )


def _memory_rows(p: dict) -> list[tuple[str, str, str, str]]:
    m, gpu = p["memory"], p["gpu"]
    chunking = (f"one chunk of {m['loss_chunk']:,} positions at a time" if m["loss_chunk"]
                else "all positions (no loss chunking)")
    min_gpus = ("never (the unshardable part alone is too big)" if m["min_gpus"] is None
                else f"{m['min_gpus']} ({m['min_gpus_nodes_of_8']} in nodes of 8)")
    out = _section(
        "memory",
        ("model state per GPU", human_gib(m["model_state_per_gpu"]),
         f"{m['bytes_per_param_sharded']} B/param ({m['precision']}) sharded over {gpu['count']}"),
        ("unsharded working set", human_gib(m["working_set"]),
         "2 bf16 blocks gathered + grads + embedding/head"),
        ("activations", human_gib(m["activations"]),
         f"checkpointing {m['checkpointing']}, {m['micro_batch']} x {m['seq_len']} positions"),
        ("logits at the loss", human_gib(m["logits"]),
         "bf16 logits + fp32 log-softmax, " + chunking),
        ("per GPU", f"{human_gib(m['per_gpu'])} of {human_gib(m['usable_hbm'])} usable",
         "fits" if m["fits"] else "DOES NOT FIT"),
        ("smallest GPU count that fits", min_gpus, "HBM minus 10% headroom"),
    )
    # The other end of the trade beside the plan's own policy: what bf16-true would save
    # (and risk) under fp32 master weights, what fp32 master weights would cost otherwise.
    other, label, basis = (
        ("bf16-true", "…with bf16-true (weights, grads, AdamW in bf16)",
         "8 B/param, --precision bf16-true: bf16 updates lose small steps")
        if m["precision"] == "fp32-master" else
        ("fp32-master", "…with fp32 master weights + fp32 AdamW", "16 B/param, the safe policy"))
    alt = p["memory_alternatives"].get(f"{other}/{m['checkpointing']}")
    if alt:
        out += _section(
            "memory",
            (label,
             f"{human_gib(alt['per_gpu'])} per GPU, smallest count "
             f"{alt['min_gpus'] if alt['min_gpus'] else 'never'}",
             basis),
        )
    return out


def _communication_rows(p: dict) -> list[tuple[str, str, str, str]]:
    co, gpu = p["communication"], p["gpu"]
    if co["bound"] == "communication":
        bound = (f": MFU at most {co['mfu_ceiling']:.2f} -> {co['gpu_hours_at_ceiling']:,.0f} "
                 f"GPU-hours, {co['gpu_hours_at_ceiling'] / gpu['count'] / 24:.1f} days")
    else:
        bound = " (the network keeps up at this MFU)"
    return _section(
        "communication",
        ("FSDP traffic per GPU per micro-batch",
         f"{human_bytes(co['bytes_per_gpu_per_microbatch'])}: {co['comm_seconds']:.1f} s vs "
         f"{co['compute_seconds']:.1f} s of compute",
         f"2 bf16 all-gathers + 1 {p['run']['reduce_dtype']} reduce-scatter over the "
         f"{co['link']} ({co['link_bytes_per_s'] / 1e9:.0f} GB/s line rate, 80% achieved)"),
        ("bound by", co["bound"] + bound,
         "perfect overlap assumed; a larger micro-batch, HSDP or tensor parallelism "
         "lowers the traffic per FLOP"),
    )


def _production_rows(p: dict) -> list[tuple[str, str, str, str]]:
    prod = p["production"]
    return _section(
        "corpus production",
        ("codec",
         f"{_duration(prod['codec_hours'])} on {prod['cores']:,} cores "
         f"({prod['codec_core_hours']:,.0f} core-h)",
         f"{human_bytes(prod['codec_bytes_per_s_per_core'])}/s per core — "
         f"{prod['codec_provenance']}"),
        ("rewriting with an LLM instead",
         f"{prod['llm_gpu_hours']:,.0f} GPU-h, {_money(prod['llm_cost'])}", prod["llm_note"]),
    )


def _inference_rows(p: dict) -> list[tuple[str, str, str, str]]:
    inf = p["inference"]
    return _section(
        "inference per byte",
        ("core + decoder FLOPs/byte",
         f"{_sci(inf['dual_flops_per_byte'])} (core {_sci(inf['core_flops_per_byte'])}, "
         f"decoder {_sci(inf['decoder_flops_per_byte'])})",
         f"decoder: {inf['decoder_name']}"),
        ("same-size BPE model FLOPs/byte", _sci(inf["bpe_same_size_flops_per_byte"]),
         f"forward 2N + 4·L·d·T at T={inf['context_positions']}"),
        ("context reach",
         f"core {human_bytes(inf['core_context_bytes'])} vs "
         f"BPE {human_bytes(inf['bpe_context_bytes'])}",
         f"{inf['context_positions']} positions each"),
    )


def _equivalence_rows(p: dict) -> list[tuple[str, str, str, str]]:
    eq = p["equivalence"]
    low, high = eq["claimed_bpe_params"][0], eq["claimed_bpe_params"][1]
    need = eq["compression_needed_for_claim"]
    return _section(
        "equivalence",
        ("compression k (bytes/symbol ÷ bytes/BPE token)", f"{eq['compression']:.2f}x",
         "from the two rows above"),
        ("BPE model with the same training FLOPs per byte",
         human_count(eq["bpe_params_same_train_flops_per_byte"]) + " params", "N / k"),
        ("core the same budget buys (vs a BPE model of N)",
         human_count(eq["core_params_for_same_budget_as_bpe"]) + " params", "k x N"),
        ("context in bytes at equal attention cost", f"{eq['context_ratio']:.2f}x the BPE model",
         "k"),
        ("attention FLOPs for the same bytes of context",
         f"{1 / eq['compression'] ** 2:.2f}x the BPE model's",
         "(1/k)^2: attention is quadratic in positions"),
        ("parameters", human_count(eq["params"]) + " (compression does not multiply them)", ""),
        (f"claim {human_count(low)}–{human_count(high)} GPT would need k of",
         f"{need[0]:.1f}–{need[1]:.1f}x",
         "and that quality per byte follows compute per byte, which is untested"),
        ("predicted bits per byte vs a BPE model of equal compute", *_predicted(p["scaling"])),
    )


def _predicted(scaling: dict) -> tuple[str, str]:
    """The scaling study's ratio at this run's training FLOPs, with its provenance and how far
    beyond the fitted range it reaches."""
    if scaling.get("status") != "predicted":
        return "not measured yet", "benchmarks/scaling_grid.py fits it"
    cells = []
    for name, s in scaling["systems"].items():
        lo, hi = s["ratio_interval"]
        cell = f"{name} {s['ratio']:.2f}x [{lo:.2f}, {hi:.2f}]"
        if "leave_one_out" in s:
            low, high = s["leave_one_out"]
            cell += f" (one budget left out: {low:.2f}–{high:.2f}x)"
        cells.append(cell)
    lo, hi = scaling["fitted_flops"]
    return (f"{'; '.join(cells)} at {scaling['flops']:.2g} FLOPs (core + alignment)",
            f"from {scaling['source']}; fitted over {lo:.2g}–{hi:.2g} FLOPs, extrapolated "
            f"{scaling['decades_beyond']:.0f} decades; 95% intervals over held-out documents only")


def _recompute_note(p: dict) -> str:
    """Full checkpointing recomputes each block's forward: hardware FLOPs = 4/3 x model FLOPs."""
    if p["run"]["checkpointing"] != "full":
        return ""
    hfu = p["inputs"]["mfu"]["value"] * 4 / 3
    return (
        f"; with full activation checkpointing the recomputed forward is not model FLOPs, so this "
        f"MFU means ~{hfu:.0%} hardware utilisation"
    )
