"""benchmarks/faults.py: the kill plans and the state comparison (fast), and the quick campaign
end to end (slow: every train.py start costs seconds, and a trial starts two or three)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from faults_kill import Kill, _target, differences, plan_kills  # noqa: E402


def test_kill_plans_are_seeded_and_aim_at_checkpoint_writes():
    plans = plan_kills(12, random.Random(12), max_steps=16, every=4)
    assert plans == plan_kills(12, random.Random(12), max_steps=16, every=4)
    assert plans != plan_kills(12, random.Random(13), max_steps=16, every=4)
    kills = [k for p in plans for k in p]
    writes = [k for k in kills if k.kind == "write"]
    assert len(writes) >= len(plans) // 2 and {k.step for k in writes} <= {4, 8, 12, 16}
    assert any(k.kind == "step" and k.step == 0 for k in kills)  # during start-up
    assert any(len(p) == 2 for p in plans)  # killed again while resuming ...
    assert all(p[0].step < p[1].step for p in plans if len(p) == 2)  # ... later in the run
    assert Kill("write", 8, 0.25).planned() == "write of step 8 +0.25s"


def test_the_comparison_sees_one_ulp_of_one_weight():
    state = {"state_dict": {"w": torch.randn(8), "b": torch.zeros(2)}, "global_step": 16,
             "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(8)}}}],
             "lr_schedulers": [{"last_epoch": 16}], "dualmind": {"rng": {"torch": torch.ones(3)}}}

    def copy():
        return {k: (v.copy() if isinstance(v, dict) else v) for k, v in state.items()}

    assert differences(state, copy()) == []
    nudged = copy()
    nudged["state_dict"] = {**state["state_dict"],
                            "w": torch.nextafter(state["state_dict"]["w"], torch.tensor(9.0))}
    assert differences(nudged, state) == ["weights"]
    other = copy()
    other["global_step"] = 12
    other["optimizer_states"] = [{"state": {0: {"exp_avg": torch.full((8,), 2.0)}}}]
    assert differences(other, state) == ["optimizer", "global step"]


def test_a_stream_is_named_by_its_checkpoint():
    assert _target("/r/checkpoints/.last.ckpt.tmp-123") == "last.ckpt"
    assert _target("/r/checkpoints/.step0000008.ckpt.tmp-9") == "step0000008.ckpt"
    assert _target("/r/checkpoints/.last.ckpt.tmp/__1_0.distcp") == ".last.ckpt.tmp/__1_0.distcp"


@pytest.mark.slow
def test_quick_campaign_writes_its_section(tmp_path):
    from test_train_support import tiny_corpus

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n")
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "faults.py"), "--quick", "--corpus",
         str(tiny_corpus()), "--results", str(results), "--out", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = results.read_text()
    assert "kept" in text and "<!-- reliability:start -->" in text
    assert "final state identical to the uninterrupted run in **2/2**" in text
    assert "unreadable last checkpoints after a kill: **0**" in text
    assert "temporaries left at the end: 0." in text
    rows = [x for x in text.splitlines() if x.startswith("| ") and x[2].isdigit()]
    assert [r.split(" | ")[1] for r in rows] == ["binary file", "malformed JSONL",
                                                 "unknown config key"]
    assert [r.split(" | ")[3] for r in rows] == ["0", "0", "2"]
    assert all(" | yes: " in r for r in rows)
