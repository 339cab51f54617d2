"""ckpt_path of another stage or another weight shape is refused in one line before the run
builds anything (it used to fail inside Lightning's load_state_dict with a traceback)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from dualmind.config.schema import check_model_config, compose
from dualmind.train.resume_check import check_resume
from dualmind.train.run_paths import RunPathError


def saved(tmp_path, stage, model, name="saved.ckpt"):
    path = tmp_path / name
    torch.save({"dualmind": {"stage": stage, "model": model, "decoder": None}}, path)
    return str(path)


def cfg_with(recipe, **values):
    cfg = compose([f"recipe={recipe}"])
    OmegaConf.set_struct(cfg, False)
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def mini_model():
    return check_model_config(compose(["recipe=core_mini"]).model).to_dict()


def test_a_checkpoint_of_another_stage_is_refused(tmp_path):
    ckpt = saved(tmp_path, "core", mini_model())
    with pytest.raises(RunPathError) as e:
        check_resume(cfg_with("baseline_bpe_mini", ckpt_path=ckpt))
    assert e.value.kind == "wrong_checkpoint" and str(e.value) == (
        f"ckpt_path={ckpt}: a checkpoint of stage core, but this run trains stage lm; resume a "
        "checkpoint of the same recipe, or start a fresh run")
    with pytest.raises(RunPathError, match="a trained core to read is passed as core.checkpoint"):
        check_resume(cfg_with("decoder_align", ckpt_path=ckpt))


def test_a_checkpoint_of_another_shape_names_each_difference(tmp_path):
    ckpt = saved(tmp_path, "core", mini_model())
    with pytest.raises(RunPathError) as e:
        check_resume(cfg_with("core_mini", ckpt_path=ckpt, **{"model.dim": 128}))
    assert "its weights have another shape: model.dim=256 (this run: 128), model.head_dim=64 " \
           "(this run: 32); resume it with the model it was trained with" in str(e.value)


def test_settings_that_shape_no_weight_may_change(tmp_path):
    ckpt = saved(tmp_path, "core", mini_model())
    check_resume(cfg_with("core_mini", ckpt_path=ckpt, **{"model.attn_backend": "sdpa",
                                                          "model.max_seq_len": 512}))
    check_resume(cfg_with("core_mini", ckpt_path="last"))  # the run's own: not checked here
    (tmp_path / "junk.ckpt").write_bytes(b"junk")  # unreadable: left to run_paths and the run
    check_resume(cfg_with("core_mini", ckpt_path=str(tmp_path / "junk.ckpt")))


def test_the_decoders_reading_is_part_of_its_shape(tmp_path):
    """The copy channel's slots and the pointer window add weights of their own: resuming an
    align checkpoint with other values is refused before the run builds anything."""
    cfg = cfg_with("decoder_align", ckpt_path="x")
    decoder = OmegaConf.to_container(cfg.decoder, resolve=True)
    path = tmp_path / "align.ckpt"
    torch.save({"dualmind": {"stage": cfg.stage, "model": None,
                             "decoder": {**decoder, "copy_slots": 2}}}, path)
    with pytest.raises(RunPathError, match=r"decoder\.copy_slots=2 \(this run: 4\)"):
        check_resume(cfg_with("decoder_align", ckpt_path=str(path)))
