"""A bare override of an unknown key gets the project's message: the key, the override, and the
nearest keys that exist (or, with none close, the keys where it was meant to go); never Hydra's
hint to append it with `+`, which the config checks then refuse. Other Hydra errors stay Hydra's.
Through train.py: one line on stderr, exit code 2 (tests/test_train_py_errors.py)."""

from __future__ import annotations

import pytest

from dualmind.config.overrides import nearest_keys
from dualmind.config.schema import ConfigError, compose


@pytest.mark.parametrize("recipe, override, message", [
    ("core_mini", "optim.lrr=1",
     "override optim.lrr=1: unknown config key 'optim.lrr'; did you mean optim.lr?"),
    ("core_mini", "trainer.precison=32-true",
     "override trainer.precison=32-true: unknown config key 'trainer.precison'; "
     "did you mean trainer.precision?"),
    ("core_mini", "optimm.lr=1",
     "override optimm.lr=1: unknown config key 'optimm.lr'; did you mean optim.lr?"),
    ("core_mini", "reciep=core_mini",
     "override reciep=core_mini: unknown config key 'reciep'; did you mean recipe?"),
    ("decoder_align", "decoder.n_layrs=3",  # a recipe's own group: its keys are the candidates
     "override decoder.n_layrs=3: unknown config key 'decoder.n_layrs'; "
     "did you mean decoder.n_layers?"),
    ("bridge_lora", "lora.rr=4",
     "override lora.rr=4: unknown config key 'lora.rr'; did you mean lora.r?"),
])
def test_a_misspelt_key_names_the_nearest_one(recipe, override, message):
    with pytest.raises(ConfigError) as e:
        compose([f"recipe={recipe}", override])
    assert str(e.value) == message


def test_a_key_like_no_other_lists_the_keys_where_it_was_meant_to_go():
    with pytest.raises(ConfigError) as e:
        compose(["recipe=core_mini", "foo=1"])
    assert str(e.value).startswith(
        "override foo=1: unknown config key 'foo'; the keys of the config are: align, ckpt_path, "
    )
    assert "+foo" not in str(e.value)
    with pytest.raises(ConfigError, match=r"the keys of optim are: optim\.betas, optim\.eps, "):
        compose(["recipe=core_mini", "optim.zzzzzz=1"])


def test_an_unknown_group_option_names_the_nearest_one():
    """Hydra printed the options and its search path over a dozen lines, exit 1."""
    with pytest.raises(ConfigError, match=r"^recipe=core_mimi: no recipe of that name; did you "
                                          r"mean core_mini\? \(recipe options: baseline_bpe"):
        compose(["recipe=core_mimi"])
    with pytest.raises(ConfigError, match=r"^recipe=nope: no recipe of that name \(recipe "):
        compose(["recipe=nope"])
    with pytest.raises(ConfigError, match=r"^strategy=fsdp: .*did you mean fsdp2\?"):
        compose(["recipe=core_mini", "strategy=fsdp"])


def test_other_hydra_errors_keep_hydras_words():
    with pytest.raises(ConfigError, match=r"Could not override 'hydra\.foo'"):
        compose(["recipe=core_mini", "hydra.foo=1"])


def test_nearest_keys_prefers_siblings_and_only_close_ones():
    keys = ["optim", "optim.lr", "optim.min_lr_ratio", "optim.eps", "data", "data.dir"]
    assert nearest_keys("optim.lrr", keys) == ["optim.lr"]  # not every key sharing "optim."
    assert nearest_keys("optim.zzz", keys) == []
    assert nearest_keys("dta.dir", keys) == ["data.dir"]  # parent unknown: whole names
