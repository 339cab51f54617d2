"""Run the per-shard function on a Ray cluster with Ray Data (`pip install dualmind[cluster]`).

Each row of a Ray Dataset is one shard task `(split, shard_index, num_shards)`; `map` calls the
very `build_shard` that the local backends call. The workers must see OUT_DIR (a shared
filesystem on a real cluster) and the lexicon folder recorded in the plan. Shards that exist are
skipped before the tasks are sent, and `build_shard` itself never rewrites one, so a Ray job
that dies is resumed by running the build again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise RuntimeError("the ray backend needs Ray Data: pip install 'dualmind[cluster]'") from e
    return ray


def shard_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data map function: one task row in, the shard's stats (as JSON text) out."""
    import json
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from dualmind.data.build.shard_build import build_shard

    stats = build_shard(row["out_dir"], row["split"], int(row["shard"]), int(row["num_shards"]))
    return {"split": row["split"], "shard": int(row["shard"]), "stats": json.dumps(stats)}


def run_shards_on_ray(
    out_dir: Path,
    tasks: list[tuple[str, int, int]],
    address: str | None = None,
    num_cpus: int | None = None,
) -> list[dict[str, Any]]:
    """Build the shards on Ray; connects to `address` or starts/uses a local instance."""
    import json

    ray = _require_ray()
    if not tasks:
        return []
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        elif num_cpus:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
        started = True
    try:
        rows = [
            {"out_dir": str(out_dir), "split": s, "shard": k, "num_shards": n} for s, k, n in tasks
        ]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        # one task per shard, one CPU each: a shard is the unit of work and of resumption
        out = ds.map(shard_row, num_cpus=1).take_all()
        return [
            dict(json.loads(r["stats"]), split=r["split"], shard=r["shard"])
            for r in sorted(out, key=lambda r: (r["split"], r["shard"]))
        ]
    finally:
        if started:
            ray.shutdown()
