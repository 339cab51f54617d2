"""A ``Plan`` as a small PNG: wall-clock days against GPU count, and the equivalence bars."""

from __future__ import annotations

from pathlib import Path


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
    for points, style in (
        (fits, dict(color="tab:blue", s=14, label="fits in memory")),
        (no_fit, dict(color="tab:red", marker="x", s=18, label="does not fit")),
    ):
        left.scatter([s["gpus"] for s in points], [s["days"] for s in points], **style)
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
