"""The bad-input classes of train.py and `dualmind eval` (benchmarks/faults_inputs.py has the
builders' and the shared machinery). Each works on copies: the tiny corpus and the kill
campaign's uninterrupted core run are never touched."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from faults_inputs import Workspace, bad_input, row, run, sha


def _cut(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def _step(ckpt: Path) -> int:
    import torch

    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])


def _no_run(ran, shown: str, run_dir: Path) -> dict:
    """A run that must stop before it starts: nothing trained or saved."""
    lost = [f"{run_dir.name}/checkpoints made"] if (run_dir / "checkpoints").exists() else []
    return row(shown, ran, "refused", lost, "nothing started: no checkpoint written")


def _refused_run(ws: Workspace, name: str, overrides: list[str], shown: str) -> dict:
    """train.py with `overrides` in its own run folder: a run that must stop before it starts."""
    run_dir = ws.root / f"run-{name}"
    return _no_run(run("train", [*overrides, f"run_dir={run_dir}"], ws.root), shown, run_dir)


def _other_lexicon(ws: Workspace) -> Path:
    out = ws.root / "other-lexicon"
    if not out.exists():
        ran = run("dualmind", ["lexicon", "build", "good.txt", "--vocab-size", "600", "--out",
                               out, "--no-progress"], ws.root / "in")
        assert ran.rc == 0, ran.err
    return out


def _copy_core_run(ws: Workspace, name: str) -> Path:
    dst = ws.root / name
    shutil.copytree(ws.core_run, dst)
    return dst


@bad_input("unknown recipe",
           "test_train_py_errors.py::test_an_unknown_recipe_is_one_line_and_exit_2")
def _unknown_recipe(ws):
    return _refused_run(ws, "unknown-recipe", ["recipe=core_mimi"], "train.py recipe=core_mimi")


@bad_input("unknown config key",
           "test_train_py_errors.py::test_a_bare_unknown_override_is_one_line_and_exit_2")
def _unknown_key(ws):
    return _refused_run(ws, "unknown-key", [*ws.train, "optim.lrr=1"],
                        "train.py recipe=core_mini optim.lrr=1")


@bad_input("negative size (train.py)",
           "test_recipes.py::test_negative_and_out_of_range_numbers_name_the_key")
def _negative_train(ws):
    return _refused_run(ws, "negative", [*ws.train, "trainer.max_steps=-3"],
                        "train.py recipe=core_mini ... trainer.max_steps=-3")


@bad_input("wrong lexicon for a corpus", "test_train.py::test_bad_input_names_key_or_path")
def _wrong_lexicon(ws):
    return _refused_run(ws, "wrong-lexicon", [*ws.train, f"data.lexicon={_other_lexicon(ws)}"],
                        "train.py ... data.lexicon=<another lexicon>")


def _damaged_corpus_row(ws: Workspace, name: str, file: str, shown: str) -> dict:
    corpus = ws.root / f"corpus-{name}"
    shutil.copytree(ws.corpus, corpus)
    _cut(corpus / "shards" / file)
    return _refused_run(ws, name, [*ws.train, f"data.dir={corpus}"], shown)


@bad_input("truncated shard", "test_shards.py::test_shardset_checks_sizes_and_missing_files")
def _truncated_shard(ws):
    return _damaged_corpus_row(ws, "cut-shard", "train-00000.shard",
                               "train.py ... data.dir=<corpus, train shard cut in half>")


@bad_input("truncated packed array (.npy)",
           "test_corpus_build.py::test_a_damaged_packed_array_is_named")
def _truncated_packed(ws):
    return _damaged_corpus_row(ws, "cut-packed", "train.core.npy",
                               "train.py ... data.dir=<corpus, train.core.npy cut in half>")


@bad_input("truncated checkpoint (ckpt_path=<file>)",
           "test_resume_fallback.py::test_an_explicit_truncated_path_is_refused_naming_the_"
           "intact_one")
def _truncated_ckpt(ws):
    run_dir = _copy_core_run(ws, "run-cut-ckpt")
    last, intact = run_dir / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / \
        "step0000016.ckpt"
    _cut(last)
    before = sha(intact)
    ran = run("train", [*ws.train, f"run_dir={run_dir}", "trainer.max_steps=18",
                        f"ckpt_path={last}"], ws.root)
    lost = [] if sha(intact) == before else ["the intact step0000016.ckpt changed"]
    named = " and named in the message" if intact.name in ran.line() else ""
    return row("train.py ... ckpt_path=<last.ckpt cut in half>", ran, "refused", lost,
               f"nothing trained; the intact step0000016.ckpt unchanged{named}")


@bad_input("truncated last.ckpt (ckpt_path=last)",
           "test_resume_fallback.py::test_a_truncated_last_ckpt_falls_back_to_the_newest_intact_"
           "one")
def _truncated_last(ws):
    run_dir = _copy_core_run(ws, "run-cut-last")
    _cut(run_dir / "checkpoints" / "last.ckpt")
    ran = run("train", [*ws.train, f"run_dir={run_dir}", "trainer.max_steps=18",
                        "ckpt_path=last"], ws.root)
    resumed = re.search(r"resumed from step (\d+): (\d+) steps in total", ran.out)
    lost = [] if resumed and resumed.groups() == ("16", "18") else [
        f"did not resume at step 16 and reach 18 ({resumed and resumed.group(0)})"]
    return row("train.py ... ckpt_path=last (last.ckpt cut in half)", ran,
               "fell back to step0000016.ckpt", lost,
               "resumed at step 16 from the intact step file, trained 17-18",
               having="ckpt_path=last:")


@bad_input("NaN loss", "test_train.py::test_nan_loss_stops_with_step_and_keeps_last_checkpoint")
def _nan(ws):
    """A diverged state: resumed from a copy of the step-16 checkpoint with one NaN weight, so
    the next step's loss is NaN. (No setting makes this tiny run diverge reliably: optim.lr=1e12
    trained on with huge but finite losses.) The run's own checkpoints must stay as they were."""
    import torch

    run_dir = _copy_core_run(ws, "run-nan")
    ckpts = run_dir / "checkpoints"
    poisoned = ws.root / "nan-weights.ckpt"
    ckpt = torch.load(ckpts / "step0000016.ckpt", weights_only=True)
    ckpt["state_dict"]["core.norm.weight"][0] = float("nan")
    torch.save(ckpt, poisoned)
    before, names = sha(ckpts), sorted(p.name for p in ckpts.iterdir())
    ran = run("train", [*ws.train, f"run_dir={run_dir}", "trainer.max_steps=20",
                        f"ckpt_path={poisoned}"], ws.root)
    lost = [] if sha(ckpts) == before and sorted(p.name for p in ckpts.iterdir()) == names \
        else ["the run's checkpoints changed"]
    return row("train.py ... ckpt_path=<step 16 with one NaN weight>", ran,
               "stopped before the update", lost,
               "last.ckpt and step0000016.ckpt the same bytes; no checkpoint of a NaN state")


@bad_input("disk full during a checkpoint write (simulated)",
           "test_train.py::test_a_full_disk_mid_save_stops_the_run_with_one_error_and_it_resumes;"
           " test_atomic_save.py")
def _disk_full(ws):
    """ENOSPC half-way into the 4th checkpoint stream (last.ckpt of step 8), as a full disk
    fails a write; benchmarks/faults_child.py simulates it in the real train.py."""
    run_dir = ws.root / "run-disk-full"
    args = [*ws.train, f"run_dir={run_dir}", "trainer.max_steps=12"]
    ran = run("child", args, ws.root, env={"FAULTS_ENOSPC_AT": "4"})
    last = run_dir / "checkpoints" / "last.ckpt"
    lost = []
    try:
        kept = _step(last)
    except Exception as err:  # noqa: BLE001 - reported as the finding it would be
        kept, lost = None, [f"last.ckpt unreadable ({type(err).__name__})"]
    again = run("train", [*args, "ckpt_path=last"], ws.root)
    resumed = re.search(r"resumed from step (\d+)", again.out)
    if again.rc != 0 or not resumed:
        lost.append(f"the resume failed (exit {again.rc}: {again.line()})")
    temps = [p.name for p in last.parent.iterdir() if p.name.startswith(".")]
    lost += [f"temporary {t} left" for t in temps]
    return row("train.py ... (ENOSPC in last.ckpt's write at step 8)", ran,
               "-", lost, f"last.ckpt whole at step {kept}; the resume took step "
               f"{resumed and resumed.group(1)} (its step file was written) and finished")


def needs_align(fn):
    fn.needs_align = True
    return fn


def _eval_row(ws: Workspace, args: list, shown: str, reads: list[Path]) -> dict:
    before = sha(*reads)
    ran = run("dualmind", ["eval", "--data", ws.corpus, "--max-records", "8", "--scenes", "0",
                           *args], ws.root)  # args last: a later --scenes wins
    lost = [] if sha(*reads) == before else ["an input changed"]
    return row(shown, ran, "refused", lost, "read-only: checkpoint and corpus unchanged")


@bad_input("decoder paired with another core",
           "test_evaluate.py::test_a_decoder_beside_another_core_is_refused")
@needs_align
def _other_core(ws):
    import torch

    ckpt = torch.load(ws.core_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["state_dict"]["core.tok_embeddings.weight"][0, 0] += 1e-3  # same shape, other weights
    other = ws.root / "other-core.ckpt"
    torch.save(ckpt, other)
    return _eval_row(ws, [ws.align_ckpt, "--core", other],
                     "dualmind eval align.ckpt --core <another core>", [ws.align_ckpt, other])


@bad_input("truncated checkpoint (eval)",
           "test_bad_input_cli.py::test_eval_of_a_checkpoint_cut_short_exits_2_naming_it")
@needs_align
def _eval_truncated(ws):
    cut = ws.root / "align-cut.ckpt"
    shutil.copy(ws.align_ckpt, cut)
    _cut(cut)
    return _eval_row(ws, [cut], "dualmind eval <align.ckpt cut in half>", [cut, ws.corpus])


@bad_input("wrong lexicon for a corpus (eval)",
           "test_evaluate.py::test_a_lexicon_other_than_the_corpus_is_refused_for_glossing")
@needs_align
def _eval_lexicon(ws):
    other = _other_lexicon(ws)
    return _eval_row(ws, [ws.align_ckpt, "--lexicon", other, "--scenes", "1"],
                     "dualmind eval align.ckpt --lexicon <another lexicon> --scenes 1",
                     [ws.align_ckpt, other])
