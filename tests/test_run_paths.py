"""Every path a training run reads is checked before anything is built, for every recipe: one
line naming the key and the path, raised as RunPathError (train.py: `error: ...`, exit code 2).
One test per kind of bad path; test_train_py_errors.py runs two of them through train.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dualmind.config.schema import ConfigError, compose, list_recipes
from dualmind.train.run_paths import RunPathError, check_run_paths

CORE_RECIPES = ["decoder_align", "decoder_align_70b", "bridge_lora", "core_unfreeze"]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """A fake corpus, lexicon and checkpoints: only their shape is checked, never their insides."""
    root = tmp_path_factory.mktemp("paths")
    (root / "corpus").mkdir()
    (root / "corpus" / "manifest.json").write_text("{}")
    (root / "lexicon").mkdir()
    for name in ("lexicon.json", "units.tsv"):
        (root / "lexicon" / name).write_text("")
    import zipfile

    with zipfile.ZipFile(root / "core.ckpt", "w") as z:  # torch.save writes a zip archive
        z.writestr("archive/data.pkl", b"")
    whole = (root / "core.ckpt").read_bytes()
    (root / "truncated.ckpt").write_bytes(whole[: len(whole) // 2])
    (root / "empty").mkdir()
    (root / "sharded").mkdir()
    (root / "sharded" / "meta.pt").write_bytes(b"")
    (root / "unfinished").mkdir()
    (root / "unfinished" / ".build").mkdir()
    (root / "unfinished" / ".build" / "plan.json").write_text(json.dumps({}))
    return root


@pytest.fixture(scope="module")
def configs():
    return {r: compose([f"recipe={r}"]) for r in list_recipes()}


def check(cfg, **values):
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)
    for key, value in values.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    check_run_paths(cfg)


def good(recipe, paths) -> dict:
    values = {"data__dir": str(paths / "corpus")}
    if recipe in CORE_RECIPES:
        values["core__checkpoint"] = str(paths / "core.ckpt")
    return values


def refused(cfg, kind, **values) -> str:
    with pytest.raises(RunPathError) as e:
        check(cfg, **values)
    assert e.value.kind == kind and "\n" not in str(e.value)
    assert isinstance(e.value, ConfigError)  # what train.py reports in one line, exit 2
    return str(e.value)


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_recipe_passes_with_good_paths(recipe, configs, paths):
    check(configs[recipe], **good(recipe, paths))


@pytest.mark.parametrize("recipe", list_recipes())
def test_data_dir_missing_a_file_or_not_a_corpus(recipe, configs, paths):
    cfg, base = configs[recipe], good(recipe, paths)
    assert refused(cfg, "not_set", **base | {"data__dir": "???"}).startswith("data.dir: not set")
    missing = paths / "nowhere"
    assert refused(cfg, "missing", **base | {"data__dir": str(missing)}).startswith(
        f"data.dir={missing}: no such folder; build a corpus first")
    assert refused(cfg, "not_a_folder", **base | {"data__dir": str(paths / "core.ckpt")}) == (
        f"data.dir={paths / 'core.ckpt'}: a file, not a corpus folder; data.dir is the folder "
        "`dualmind corpus build --out` wrote")
    assert "no manifest.json: not a corpus folder" in refused(
        cfg, "not_a_corpus", **base | {"data__dir": str(paths / "empty")})


def test_an_unfinished_corpus_says_how_to_finish_it(configs, paths):
    msg = refused(configs["core_mini"], "unfinished_corpus", data__dir=str(paths / "unfinished"))
    assert "an unfinished corpus build (no manifest.json); rerun the `dualmind corpus build`" in msg


@pytest.mark.parametrize("recipe", CORE_RECIPES)
def test_core_checkpoint_not_set_missing_or_not_a_checkpoint(recipe, configs, paths):
    cfg, base = configs[recipe], good(recipe, paths)
    stage = cfg.stage
    assert refused(cfg, "not_set", **base | {"core__checkpoint": None}).startswith(
        f"core.checkpoint: not set; stage {stage} reads a trained core: pass core.checkpoint=<")
    assert refused(cfg, "missing", **base | {"core__checkpoint": "/no/core.ckpt"}).startswith(
        "core.checkpoint=/no/core.ckpt: no such file or folder (core.checkpoint takes a .ckpt file")
    markers = ("meta.pt (a sharded checkpoint folder) or " if stage == "align" else "") + (
        "config.json (a `dualmind export` folder); core.checkpoint takes ")
    assert f"{paths / 'empty'}: a folder without {markers}" in refused(
        cfg, "wrong_kind", **base | {"core__checkpoint": str(paths / "empty")})


@pytest.mark.parametrize("recipe", CORE_RECIPES)
def test_a_truncated_core_checkpoint_is_named_not_unpickled(recipe, configs, paths):
    bad = paths / "truncated.ckpt"
    size = bad.stat().st_size
    assert refused(configs[recipe], "unreadable",
                   **good(recipe, paths) | {"core__checkpoint": str(bad)}) == (
        f"core.checkpoint={bad}: not a readable checkpoint ({size} bytes, not a whole torch.save "
        "archive: truncated, or another kind of file)")


def test_adapters_read_no_sharded_core(configs, paths):
    msg = refused(configs["bridge_lora"], "wrong_kind", data__dir=str(paths / "corpus"),
                  core__checkpoint=str(paths / "sharded"))
    assert msg.endswith("a sharded checkpoint folder, but core.checkpoint takes a .ckpt file or "
                        "a `dualmind export` folder")
    check(configs["decoder_align"], data__dir=str(paths / "corpus"),
          core__checkpoint=str(paths / "sharded"))  # align reads fsdp2 cores


@pytest.mark.parametrize("recipe", ["core_mini", "decoder_align", "baseline_bpe_mini"])
def test_ckpt_path_missing_truncated_or_not_a_checkpoint(recipe, configs, paths):
    cfg, base = configs[recipe], good(recipe, paths)
    refused(cfg, "missing", **base | {"ckpt_path": "/no/last.ckpt"})
    refused(cfg, "unreadable", **base | {"ckpt_path": str(paths / "truncated.ckpt")})
    refused(cfg, "wrong_kind", **base | {"ckpt_path": str(paths / "empty")})
    check(cfg, **base | {"ckpt_path": "last"})  # "last" is looked up (and checked) by the run


def test_data_lexicon_a_file_not_a_lexicon_or_nothing(configs, paths):
    cfg, base = configs["core_mini"], good("core_mini", paths)
    refused(cfg, "not_a_folder", **base | {"data__lexicon": str(paths / "core.ckpt")})
    half = paths / "half_lexicon"
    half.mkdir(exist_ok=True)
    (half / "lexicon.json").write_text("{}")
    assert "no units.tsv: not a lexicon folder" in refused(
        cfg, "not_a_lexicon", **base | {"data__lexicon": str(half)})
    msg = refused(cfg, "not_a_lexicon", **base | {"data__lexicon": str(paths / "empty")})
    assert msg.startswith(f"data.lexicon={paths / 'empty'}: no lexicon.json: not a lexicon")
    refused(cfg, "missing", **base | {"data__lexicon": "/no/lexicon"})
    check(cfg, **base | {"data__lexicon": str(paths / "lexicon")})
    check(cfg, **base | {"data__lexicon": "3716f3f8366ee70b"})  # a fingerprint: not a path


def test_paths_are_checked_in_a_fixed_order(configs, paths):
    """data.dir first, then the lexicon, then the checkpoints: the first bad one is named."""
    msg = refused(configs["decoder_align"], "missing", data__dir="/no/corpus",
                  core__checkpoint="/no/core.ckpt")
    assert msg.startswith("data.dir=/no/corpus")


def test_checkpoint_kinds(paths):
    from dualmind.train.run_paths import checkpoint_kind

    assert checkpoint_kind(paths / "core.ckpt") == "ckpt"
    assert checkpoint_kind(paths / "sharded") == "dcp"
    assert checkpoint_kind(paths / "empty") is None and checkpoint_kind(Path("/no")) is None
