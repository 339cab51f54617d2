"""What `build_corpus` returns, and how the CLI prints it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dualmind.data.build.options import SPLITS
from dualmind.sources.problems import Problems


@dataclass
class BuildSummary:
    out_dir: str
    status: str  # "built" | "resumed" | "up-to-date"
    manifest: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    shards_built: int = 0
    shards_reused: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        m = self.manifest
        lines = [
            f"corpus {self.out_dir} ({self.status}; {self.shards_built} shards built, "
            f"{self.shards_reused} reused)",
            f"  lexicon {m['lexicon']['fingerprint']} level={m['lexicon']['level']} "
            f"vocab={m['lexicon']['vocab_size']}; decoder BPE vocab={m['tokenizer']['vocab_size']}",
            # the one setting a training run must match (the datamodule refuses less)
            f"  train with model.vocab_size >= {m['lexicon']['vocab_size']} (core, align) and "
            f"decoder.vocab_size >= {m['tokenizer']['vocab_size']} (align; stage lm: its "
            "model.vocab_size)",
        ]
        settings = m.get("settings", {})
        if settings.get("heldout"):
            lines.append(f"  val: the documents of the {len(settings['heldout'])} --heldout files")
        elif "val_fraction" in settings:
            lines.append(
                f"  val: {settings['val_fraction']:g} of each language's characters, by document"
            )
        for split in split_order(m):
            s = m["splits"][split]
            # no square brackets: rich would read them as markup and drop them
            langs = " · ".join(
                f"{lang}: {v['records']} records, {v['bytes'] / 1e6:.2f} MB"
                for lang, v in sorted(s["langs"].items())
            )
            lines.append(
                f"  {split:5s} {s['documents']:6d} docs {s['records']:7d} records "
                f"{s['units']:9d} units {s['tokens']:9d} BPE tokens {s['bytes'] / 1e6:8.2f} MB"
            )
            ratio = (
                f"{s['bytes'] / s['units']:.2f} bytes/unit, "
                f"{s['tokens'] / s['units']:.2f} BPE tokens/unit; "
                if s["units"]
                else ""
            )
            lines.append(f"        {ratio}{langs}")
        lines += restore_problems(m["problems"]).summary_lines()
        if self.timings:
            order = ["plan", "tokenizer", "shards", "finalize", "total"]
            keys = sorted(self.timings, key=lambda k: order.index(k) if k in order else len(order))
            lines.append("  time: " + ", ".join(f"{k} {self.timings[k]:.1f}s" for k in keys))
        return lines


def split_order(manifest: dict) -> list[str]:
    """Splits in the order their records appear in hypertrain.jsonl."""
    return manifest.get("hypertrain", {}).get("split_order") or [
        s for s in SPLITS if s in manifest["splits"]
    ]


def restore_problems(d: dict) -> Problems:
    """The Problems recorded in plan.json or manifest.json, ready to be merged into or printed."""
    return Problems(policy=d["policy"], counts=d["counts"], examples=d["examples"])
