"""Every recipe composes; bad keys and values stop with a message naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from dualmind.config.schema import ConfigError, compose, list_recipes, repo_conf_dir, repo_root
from dualmind.model.config import CoreConfig

RECIPES = list_recipes()


def test_recipes_found():
    for name in ("core_mini", "core_125m", "core_1b", "core_70b", "core_200b", "sweep_core_mini"):
        assert name in RECIPES


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes(recipe):
    cfg = compose([f"recipe={recipe}"])
    assert cfg.name == recipe
    core = CoreConfig.from_dict(dict(cfg.model))
    assert cfg.data.seq_len <= core.max_seq_len
    assert cfg.trainer.max_steps > 0
    assert cfg.strategy.activation_checkpointing in ("none", "full", "selective")


def test_recipe_overrides_reach_the_config():
    # _self_ first in the primary defaults: the recipe's values win over the groups' defaults.
    assert compose(["recipe=core_mini"]).optim.warmup_steps == 30
    big = compose(["recipe=core_70b"])
    assert big.model.dim == 8192 and big.strategy.name == "fsdp2" and big.trainer.num_nodes == 32
    assert CoreConfig.from_dict(dict(big.model)).num_params() == 70_553_706_496
    # command-line overrides win over the recipe
    assert compose(["recipe=core_mini", "optim.lr=0.123"]).optim.lr == 0.123


def test_default_config_composes_without_recipe():
    cfg = compose([])
    assert cfg.stage == "core" and cfg.model.dim > 0


def test_sweep_recipe_carries_sweeper_params():
    with initialize_config_dir(version_base="1.3", config_dir=str(repo_conf_dir())):
        cfg = hydra_compose(
            "config", overrides=["recipe=sweep_core_mini"], return_hydra_config=True
        )
    params = cfg.hydra.sweeper.params
    assert "optim.lr" in params and "," in str(params["optim.lr"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("optim.lrr=1", "optim.lrr"),  # not in the config at all
        ("+optim.lrr=1", "optim.lrr"),  # forced in with +: the schema still refuses it
        ("+trainr.max_steps=1", "trainr"),  # unknown top-level group
        ("+model.n_layerz=3", "model.n_layerz"),
    ],
)
def test_unknown_key_is_an_error_naming_it(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        compose(["recipe=core_mini", override])


def test_struct_mode_refuses_unknown_attribute():
    cfg = compose(["recipe=core_mini"])
    with pytest.raises(Exception, match="lrr"):
        _ = cfg.optim.lrr


def test_bad_values_name_the_key():
    with pytest.raises(ConfigError, match="data.seq_len"):
        compose(["recipe=core_mini", "data.seq_len=4096"])  # longer than model.max_seq_len
    with pytest.raises(ConfigError, match="strategy.activation_checkpointing"):
        compose(["recipe=core_mini", "strategy.activation_checkpointing=some"])
    with pytest.raises(ConfigError, match="data.batch_size"):
        compose(["recipe=core_mini", "data.batch_size=many"])


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=-4", "data.batch_size=-4 must be >= 1"),
    ("trainer.max_steps=-3", r"trainer.max_steps=-3 must be >= 1 \(or -1: no limit\)"),
    ("trainer.val_check_interval=-1", "trainer.val_check_interval=-1 must be >= 1"),
    ("trainer.checkpoint_every_n_steps=-2", "trainer.checkpoint_every_n_steps=-2 must be >= 0"),
    ("data.val_max_batches=-1", "data.val_max_batches=-1 must be >= 1"),
    ("optim.lr=-1", "optim.lr=-1 must be > 0"),
    ("optim.warmup_steps=-5", "optim.warmup_steps=-5 must be >= 0"),
    ("optim.betas=[0.9,1.5]", r"optim.betas=\[0.9, 1.5\] must be two numbers in \[0, 1\)"),
])
def test_negative_and_out_of_range_numbers_name_the_key(override, message):
    """Before, Lightning or torch refused most of these with a traceback from inside the run,
    and optim.warmup_steps=-5 trained without a word."""
    with pytest.raises(ConfigError, match=message):
        compose(["recipe=core_mini", override])


def test_the_limits_let_the_documented_special_values_through():
    cfg = compose(["recipe=core_mini", "trainer.max_steps=-1", "data.val_max_batches=null",
                   "trainer.checkpoint_every_n_steps=0", "trainer.num_sanity_val_steps=-1"])
    assert cfg.trainer.max_steps == -1 and cfg.data.val_max_batches is None


def test_train_py_composes_from_another_directory(tmp_path):
    # hydra.searchpath is absolute (from the package location), so recipes are found from anywhere.
    out = subprocess.run(
        [sys.executable, str(repo_root() / "train.py"), "recipe=core_70b", "--cfg", "job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "name: core_70b" in out.stdout and "dim: 8192" in out.stdout
    assert not (Path(tmp_path) / "outputs").exists()
