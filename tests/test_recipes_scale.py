"""The large recipes are complete: their step budget is the planner's for 1 TB of text, they fit
their GPUs (dry run), and the Slurm launcher config composes without the plugin installed."""

from __future__ import annotations

import json

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from dualmind.config.schema import compose, repo_conf_dir
from dualmind.plan.cli import main as plan_main


@pytest.mark.parametrize("recipe", ["core_70b", "core_200b"])
def test_large_recipe_steps_cover_one_terabyte(recipe, capsys):
    cfg = compose([f"recipe={recipe}"])
    assert plan_main([f"recipe={recipe}", "--corpus", "1TB", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert cfg.trainer.max_steps == pytest.approx(plan["run"]["steps_for_corpus"], rel=0.01)
    assert cfg.data.seq_len <= cfg.model.max_seq_len
    assert cfg.trainer.checkpoint_every_n_steps > 0
    assert cfg.trainer.max_steps > cfg.optim.warmup_steps


def test_core_70b_reaches_16k_symbols_with_rope_scaling():
    cfg = compose(["recipe=core_70b"])
    assert cfg.data.seq_len == 16384
    assert cfg.model.rope_scaling.type == "llama3"
    assert cfg.model.rope_scaling.factor * cfg.model.rope_scaling.original_max_seq_len >= 16384


def test_slurm_launcher_composes_from_the_recipe():
    with initialize_config_dir(version_base="1.3", config_dir=str(repo_conf_dir())):
        cfg = hydra_compose("config", overrides=["recipe=core_70b", "hydra/launcher=slurm"],
                            return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.nodes == 32 and launcher.tasks_per_node == 8 and launcher.gpus_per_node == 8
