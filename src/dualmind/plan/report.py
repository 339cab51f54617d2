"""A ``Plan`` as a Rich table, as JSON, and as a small PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


def rows(p: dict) -> list[tuple[str, str, str, str]]:
    """(section, quantity, value, basis) rows — the table, flat, so tests can read it too."""
    i, c, comp, m, ch = p["inputs"], p["corpus"], p["compute"], p["memory"], p["chinchilla"]
    prod, inf, eq, run, gpu = p["production"], p["inference"], p["equivalence"], p["run"], p["gpu"]
    co = p["communication"]
    bps, bpt = i["bytes_per_symbol"], i["bpe_bytes_per_token"]
    out = [
        (
            "run",
            "model",
            f"{p['model']['name']}: {human_count(p['model']['num_params'])} params "
            f"({p['model']['num_params']:,})",
            "conf/model, closed form = meta build",
        ),
        (
            "run",
            "recipe settings",
            f"seq_len {run['seq_len']}, micro-batch {run['micro_batch']}, "
            f"checkpointing {run['checkpointing']}, precision {run['precision']}",
            run["source"],
        ),
        ("run", "hardware", f"{gpu['count']} x {gpu['name']}", gpu["source"]),
        (
            "run",
            "global batch, optimizer steps",
            f"{human_count(run['global_batch_positions'])} positions/step, "
            f"{run['steps_for_corpus']:,.0f} steps for the corpus",
            f"{gpu['count']} GPUs x micro-batch {run['micro_batch']} x accumulate "
            f"{run['accumulate_grad_batches']} x {run['seq_len']}"
            + (
                f"; the recipe's trainer.max_steps is {run['max_steps']:,}"
                if run["max_steps"]
                else ""
            ),
        ),
        ("run", "MFU", f"{i['mfu']['value']:.2f}", i["mfu"]["provenance"] + _recompute_note(p)),
        (
            "run",
            "price per GPU-hour",
            f"${i['price_per_gpu_hour']['value']:.2f}",
            i["price_per_gpu_hour"]["provenance"],
        ),
        ("corpus", "given", f"{human_bytes(c['given_bytes'])} ({c['kind']})", "--corpus"),
        ("corpus", "text bytes per symbol", f"{bps['value']:.3g}", bps["provenance"]),
        ("corpus", "text bytes per BPE token", f"{bpt['value']:.3g}", bpt["provenance"]),
        (
            "corpus",
            "symbols (core positions)",
            human_count(c["symbols"]),
            f"text {human_bytes(c['text_bytes'])} / bytes per symbol",
        ),
        (
            "corpus",
            "same text in BPE tokens",
            human_count(c["bpe_tokens"]),
            "text / bytes per BPE token",
        ),
        (
            "training",
            "positions trained",
            human_count(c["trained_positions"]),
            f"{c['epochs']:g} epoch(s)",
        ),
        (
            "training",
            "FLOPs per position",
            _sci(comp["flops_per_token"]),
            f"6N + 12·L·d·T at T={run['seq_len']} (torchtitan / PaLM App. B)",
        ),
        ("training", "FLOPs (6ND only)", _sci(comp["flops_6nd"]), "6 x matmul params x positions"),
        ("training", "FLOPs (with attention)", _sci(comp["flops"]), ""),
        ("training", "GPU-hours", f"{comp['gpu_hours']:,.0f}", "FLOPs / (peak dense bf16 x MFU)"),
        (
            "training",
            "wall-clock",
            f"{comp['wall_days']:.1f} days",
            f"on {gpu['count']} GPUs, no downtime",
        ),
        ("training", "cost", _money(comp["cost"]), "GPU-hours x price"),
        (
            "training",
            "then the decoder (stage align, same text)",
            f"{p['alignment']['flops']:.2e} FLOPs, {p['alignment']['gpu_hours']:,.0f} GPU-hours, "
            f"{p['alignment']['wall_days']:.1f} days, {_money(p['alignment']['cost'])}",
            f"conf/decoder/{p['alignment']['decoder']}: 6N + attention per BPE token, plus the "
            "frozen core's forward per symbol",
        ),
        (
            "chinchilla",
            "compute-optimal positions",
            human_count(ch["optimal_tokens"]),
            "20 x params (Hoffmann et al. 2022)",
        ),
        (
            "chinchilla",
            "this run / optimal",
            f"{ch['ratio']:.2f}x",
            "over-trained" if ch["ratio"] > 1 else "under-trained (less data than compute-optimal)",
        ),
        (
            "chinchilla",
            "text for a compute-optimal run",
            human_bytes(ch["text_bytes_for_optimal"]),
            "compute-optimal positions x bytes per symbol",
        ),
        (
            "chinchilla",
            "compute-optimal model for this compute",
            f"{human_count(ch['optimal_params_for_compute'])} params on "
            f"{human_count(ch['optimal_tokens_for_compute'])} positions",
            "N = sqrt(6ND / 120), D = 20 N",
        ),
        (
            "memory",
            "model state per GPU",
            human_gib(m["model_state_per_gpu"]),
            f"{m['bytes_per_param_sharded']} B/param ({m['precision']}) "
            f"sharded over {gpu['count']}",
        ),
        (
            "memory",
            "unsharded working set",
            human_gib(m["working_set"]),
            "2 bf16 blocks gathered + grads + embedding/head",
        ),
        (
            "memory",
            "activations",
            human_gib(m["activations"]),
            f"checkpointing {m['checkpointing']}, {m['micro_batch']} x {m['seq_len']} positions",
        ),
        (
            "memory",
            "logits at the loss",
            human_gib(m["logits"]),
            "bf16 logits + fp32 log-softmax, "
            + (
                f"one chunk of {m['loss_chunk']:,} positions at a time"
                if m["loss_chunk"]
                else "all positions (no loss chunking)"
            ),
        ),
        (
            "memory",
            "per GPU",
            f"{human_gib(m['per_gpu'])} of {human_gib(m['usable_hbm'])} usable",
            "fits" if m["fits"] else "DOES NOT FIT",
        ),
        (
            "memory",
            "smallest GPU count that fits",
            "never (the unshardable part alone is too big)"
            if m["min_gpus"] is None
            else f"{m['min_gpus']} ({m['min_gpus_nodes_of_8']} in nodes of 8)",
            "HBM minus 10% headroom",
        ),
    ]
    alt = p["memory_alternatives"].get(f"fp32-master/{m['checkpointing']}")
    if alt and m["precision"] != "fp32-master":
        out.append(
            (
                "memory",
                "…with fp32 master weights + fp32 AdamW",
                f"{human_gib(alt['per_gpu'])} per GPU, smallest count "
                f"{alt['min_gpus'] if alt['min_gpus'] else 'never'}",
                "16 B/param, the safe policy",
            )
        )
    out += [
        (
            "communication",
            "FSDP traffic per GPU per micro-batch",
            f"{human_bytes(co['bytes_per_gpu_per_microbatch'])}: {co['comm_seconds']:.1f} s vs "
            f"{co['compute_seconds']:.1f} s of compute",
            f"2 bf16 all-gathers + 1 {p['run']['reduce_dtype']} reduce-scatter over the "
            f"{co['link']} ({co['link_bytes_per_s'] / 1e9:.0f} GB/s line rate, 80% achieved)",
        ),
        (
            "communication",
            "bound by",
            co["bound"]
            + (
                f": MFU at most {co['mfu_ceiling']:.2f} -> {co['gpu_hours_at_ceiling']:,.0f} "
                f"GPU-hours, {co['gpu_hours_at_ceiling'] / gpu['count'] / 24:.1f} days"
                if co["bound"] == "communication"
                else " (the network keeps up at this MFU)"
            ),
            "perfect overlap assumed; a larger micro-batch, HSDP or tensor parallelism "
            "lowers the traffic per FLOP",
        ),
        (
            "corpus production",
            "codec",
            f"{_duration(prod['codec_hours'])} on {prod['cores']:,} cores "
            f"({prod['codec_core_hours']:,.0f} core-h)",
            f"{human_bytes(prod['codec_bytes_per_s_per_core'])}/s per core — "
            f"{prod['codec_provenance']}",
        ),
        (
            "corpus production",
            "rewriting with an LLM instead",
            f"{prod['llm_gpu_hours']:,.0f} GPU-h, {_money(prod['llm_cost'])}",
            prod["llm_note"],
        ),
        (
            "inference per byte",
            "core + decoder FLOPs/byte",
            f"{_sci(inf['dual_flops_per_byte'])} (core {_sci(inf['core_flops_per_byte'])}, "
            f"decoder {_sci(inf['decoder_flops_per_byte'])})",
            f"decoder: {inf['decoder_name']}",
        ),
        (
            "inference per byte",
            "same-size BPE model FLOPs/byte",
            _sci(inf["bpe_same_size_flops_per_byte"]),
            f"forward 2N + 4·L·d·T at T={inf['context_positions']}",
        ),
        (
            "inference per byte",
            "context reach",
            f"core {human_bytes(inf['core_context_bytes'])} vs "
            f"BPE {human_bytes(inf['bpe_context_bytes'])}",
            f"{inf['context_positions']} positions each",
        ),
        (
            "equivalence",
            "compression k (bytes/symbol ÷ bytes/BPE token)",
            f"{eq['compression']:.2f}x",
            "from the two rows above",
        ),
        (
            "equivalence",
            "BPE model with the same training FLOPs per byte",
            human_count(eq["bpe_params_same_train_flops_per_byte"]) + " params",
            "N / k",
        ),
        (
            "equivalence",
            "core the same budget buys (vs a BPE model of N)",
            human_count(eq["core_params_for_same_budget_as_bpe"]) + " params",
            "k x N",
        ),
        (
            "equivalence",
            "context in bytes at equal attention cost",
            f"{eq['context_ratio']:.2f}x the BPE model",
            "k",
        ),
        (
            "equivalence",
            "attention FLOPs for the same bytes of context",
            f"{1 / eq['compression'] ** 2:.2f}x the BPE model's",
            "(1/k)^2: attention is quadratic in positions",
        ),
        (
            "equivalence",
            "parameters",
            human_count(eq["params"]) + " (compression does not multiply them)",
            "",
        ),
        (
            "equivalence",
            f"claim {human_count(eq['claimed_bpe_params'][0])}–"
            f"{human_count(eq['claimed_bpe_params'][1])} GPT would need k of",
            f"{eq['compression_needed_for_claim'][0]:.1f}–{eq['compression_needed_for_claim'][1]:.1f}x",
            "and that quality per byte follows compute per byte, which is untested",
        ),
        (
            "equivalence",
            "measured bits per byte (equal compute)",
            _measured(eq["measured"]),
            eq["measured"].get("source", ""),
        ),
    ]
    return out


def _recompute_note(p: dict) -> str:
    """Full checkpointing recomputes each block's forward: hardware FLOPs = 4/3 x model FLOPs."""
    if p["run"]["checkpointing"] != "full":
        return ""
    hfu = p["inputs"]["mfu"]["value"] * 4 / 3
    return (
        f"; with full activation checkpointing the recomputed forward is not model FLOPs, so this "
        f"MFU means ~{hfu:.0%} hardware utilisation"
    )


def _measured(measured: dict) -> str:
    if measured.get("status") != "measured":
        return "not measured yet"
    cells = []
    for row in measured["rows"][:6]:
        cells.append(", ".join(f"{k}={v}" for k, v in row.items() if v))
    return "; ".join(cells)


def print_table(p: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = Console(width=170)  # piped or captured: don't squeeze it into 80 columns
    title = (
        f"dualmind plan — {p['model']['name']} on {human_bytes(p['corpus']['given_bytes'])} "
        f"({p['corpus']['kind']}), {p['gpu']['count']} x {p['gpu']['key'].upper()}"
    )
    table = Table(title=title, show_lines=False, expand=False)
    for col, style in (
        ("section", "bold cyan"),
        ("quantity", ""),
        ("value", "bold"),
        ("basis / provenance", "dim"),
    ):
        table.add_column(col, style=style, overflow="fold")
    last = None
    for section, quantity, value, basis in rows(p):
        if last is not None and section != last:
            table.add_section()
        table.add_row(section if section != last else "", quantity, value, basis)
        last = section
    console.print(table)


def to_json(p: dict) -> str:
    return json.dumps(p, indent=2, default=_jsonable)


def _jsonable(x):
    if isinstance(x, tuple):
        return list(x)
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def save_plot(p: dict, path: str | Path) -> Path:
    """Two panels: wall-clock days vs GPU count (memory fit marked), and the equivalence bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    sweep = p["sweep"]
    fits = [s for s in sweep if s["fits"]]
    no_fit = [s for s in sweep if not s["fits"]]
    left.loglog([s["gpus"] for s in sweep], [s["days"] for s in sweep], color="0.6", lw=1)
    left.loglog(
        [s["gpus"] for s in sweep],
        [s["days_network_bound"] for s in sweep],
        color="tab:orange",
        lw=1,
        ls="--",
        label="at the MFU the FSDP traffic allows",
    )
    left.scatter(
        [s["gpus"] for s in fits],
        [s["days"] for s in fits],
        color="tab:blue",
        s=14,
        label="fits in memory",
    )
    left.scatter(
        [s["gpus"] for s in no_fit],
        [s["days"] for s in no_fit],
        color="tab:red",
        marker="x",
        s=18,
        label="does not fit",
    )
    n = p["gpu"]["count"]
    left.axvline(n, color="k", ls=":", lw=1)
    left.annotate(
        f"{n} GPUs: {p['compute']['wall_days']:.0f} d"
        + (
            f" ({p['communication']['gpu_hours_at_ceiling'] / n / 24:.0f} d network-bound)"
            if p["communication"]["bound"] == "communication"
            else ""
        ),
        (n, p["compute"]["wall_days"]),
        textcoords="offset points",
        xytext=(5, 5),
        fontsize=8,
    )
    left.set_xlabel(f"{p['gpu']['key'].upper()} GPUs")
    left.set_ylabel("wall-clock days")
    left.set_title(
        f"{p['model']['name']}: {p['compute']['flops']:.2e} FLOPs, "
        f"MFU {p['inputs']['mfu']['value']:.2f}",
        fontsize=9,
    )
    left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)

    eq = p["equivalence"]
    labels = [
        "core",
        "BPE at same\nFLOPs/byte",
        "core at\nBPE-N budget",
        "claim\nlow",
        "claim\nhigh",
    ]
    values = [
        eq["params"],
        eq["bpe_params_same_train_flops_per_byte"],
        eq["core_params_for_same_budget_as_bpe"],
        *eq["claimed_bpe_params"],
    ]
    colors = ["tab:blue", "tab:green", "tab:green", "tab:gray", "tab:gray"]
    right.bar(range(len(values)), [v / 1e9 for v in values], color=colors)
    right.set_xticks(range(len(values)), labels, fontsize=7)
    right.set_ylabel("parameters (billions)")
    right.set_title(
        f"equivalence at k = {eq['compression']:.2f}x; bpb: "
        f"{'measured' if eq['measured'].get('status') == 'measured' else 'not measured yet'}",
        fontsize=9,
    )
    right.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
