"""Adapters (issue 7): LoRA through PEFT and a partial unfreeze change only what they claim to,
and an adapter saved, reloaded, merged or offered to another core behaves as documented."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from dualmind.adapters.lora import AdapterError, core_fingerprint, load_adapter, merge
from dualmind.config.schema import ConfigError, compose
from dualmind.train.adapt import AdapterModule
from dualmind.train.qa_data import IGNORE, QADataModule
from test_adapters_support import adapt_overrides, tiny_core, write_core_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return write_core_checkpoint(tmp_path_factory.mktemp("core") / "core.ckpt")


def build(recipe, tmp_path, ckpt, *extra):
    cfg = compose(adapt_overrides(recipe, tmp_path, ckpt, *extra))
    dm = QADataModule.from_config(cfg).prepare()
    return AdapterModule(OmegaConf.to_container(cfg, resolve=True), dm.lexicon_fingerprint), dm


def train_steps(module, dm, steps=3, lr=5e-2):
    """What Lightning does per step, in a loop: the module's own step and trainable set."""
    optimizer = torch.optim.AdamW(module.trainable_parameters(), lr=lr)
    batches = iter(dm.train_dataloader())
    module.train()
    for _ in range(steps):
        counts = module._step(next(batches))
        loss = counts.loss + (module.adapt.kl_weight * module._kl if module._kl is not None
                              else 0.0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return module.eval()


def probe(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, 1024, (2, 24), generator=g)


def test_lora_trains_only_adapters_and_leaves_the_base_bit_identical(tmp_path, base_ckpt):
    module, dm = build("bridge_lora", tmp_path, base_ckpt)
    base = {k: v.clone() for k, v in module.core.state_dict().items() if "lora_" not in k}
    trainable = dict(module.core.named_parameters())
    names = {n for n, p in trainable.items() if p.requires_grad}
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    assert {id(p) for p in module.trainable_parameters()} == {id(trainable[n]) for n in names}
    # default targets: the four attention projections of every block, A and B each
    assert len(names) == 2 * 4 * module.core_config.n_layers
    before = module.core(probe()).logits
    train_steps(module, dm)
    for k, v in module.core.state_dict().items():
        if "lora_" not in k:
            assert torch.equal(v, base[k]), f"base weight {k} changed"
    assert not torch.allclose(module.core(probe()).logits, before), "the adapters did nothing"
    assert core_fingerprint(module.core) == module.base_core_fingerprint


def test_saved_adapter_reloads_to_identical_outputs_and_merges(tmp_path, base_ckpt):
    module, dm = build("bridge_lora", tmp_path, base_ckpt, "lora.targets=[wq,wv,w2]")
    train_steps(module, dm)
    out = module.save_adapter(tmp_path / "adapter")
    assert {p.name for p in out.iterdir()} == {"adapter_config.json",
                                              "adapter_model.safetensors", "dualmind.json"}
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    ids = probe()
    with torch.no_grad():
        expected = module.core(ids).logits
        reloaded = load_adapter(tiny_core(seed=0), out)
        assert torch.equal(reloaded(ids).logits, expected)
        merged = merge(reloaded)
        assert not any("lora_" in k or "base_layer" in k for k in merged.state_dict())
        assert (merged(ids).logits - expected).abs().max().item() <= 1e-5


def test_peft_reads_the_adapter_folder_itself(tmp_path, base_ckpt):
    from peft import PeftModel

    module, dm = build("bridge_lora", tmp_path, base_ckpt)
    train_steps(module, dm, steps=2)
    out = module.save_adapter(tmp_path / "adapter")
    ids = probe(1)
    with torch.no_grad():
        peft_model = PeftModel.from_pretrained(tiny_core(seed=0), str(out)).eval()
        assert torch.equal(peft_model(ids).logits, module.core(ids).logits)


def test_an_adapter_for_another_core_is_refused_naming_both(tmp_path, base_ckpt):
    module, _ = build("bridge_lora", tmp_path, base_ckpt)
    out = module.save_adapter(tmp_path / "adapter")
    other = tiny_core(seed=1)
    with pytest.raises(AdapterError) as err:
        load_adapter(other, out)
    message = str(err.value)
    assert module.base_core_fingerprint in message and core_fingerprint(other) in message
    assert "trained on core" in message
    assert not any("lora_" in k for k in other.state_dict()), "refused, yet modified"


@pytest.mark.parametrize("top_k", [1, 2])
def test_unfreeze_moves_only_the_top_k_blocks(tmp_path, base_ckpt, top_k):
    module, dm = build("core_unfreeze", tmp_path, base_ckpt, f"unfreeze.top_k={top_k}",
                       "adapt.kl_weight=0.5")
    before = {k: v.clone() for k, v in module.core.state_dict().items()}
    n = module.core_config.n_layers
    top = [f"layers.{i}." for i in range(n - top_k, n)]
    assert {id(p) for p in module.trainable_parameters()} == {
        id(p) for i in range(n - top_k, n) for p in module.core.layers[i].parameters()}
    train_steps(module, dm)
    assert module._kl is not None and module._kl.item() > 0  # the guard saw the drift
    for k, v in module.core.state_dict().items():
        if any(k.startswith(t) for t in top):
            if k.endswith("_norm.weight"):
                continue  # norm gains may keep their value; the matrices must move
            assert not torch.equal(v, before[k]), f"{k} is trainable but did not change"
        else:
            assert torch.equal(v, before[k]), f"{k} is frozen but changed"


def test_lora_guard_is_zero_before_training(tmp_path, base_ckpt):
    """LoRA's B starts at zero: the adapted core equals the frozen one, so KL is 0 exactly."""
    module, dm = build("bridge_lora", tmp_path, base_ckpt, "adapt.kl_weight=1.0",
                       "lora.dropout=0.0")
    module.train()
    module._step(next(iter(dm.train_dataloader())))
    assert module._kl is not None and abs(module._kl.item()) < 1e-6
    assert all(p.requires_grad for p in module.trainable_parameters())  # switched back on


def test_qa_rows_score_only_answers_and_hold_out_whole_questions():
    from dualmind.train.qa_data import QAExample, make_row
    from test_adapters_support import qa_corpus

    ex = [QAExample(torch.tensor([5, 6]).numpy(), torch.tensor([7, 8, 2]).numpy(), 3, "qa"),
          QAExample(torch.tensor([9]).numpy(), torch.tensor([10, 2]).numpy(), 2, "qa")]
    row = make_row(ex, 10)
    assert row["ids"].tolist() == [5, 6, 7, 8, 9, 10, 0, 0, 0, 0]
    assert row["targets"].tolist() == [IGNORE, 7, 8, 2, 10, 2] + [IGNORE] * 4
    assert row["doc_ids"].tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert int(row["answer_bytes"]) == 5 and row["real"].sum() == 6
    from dualmind.train.qa_data import load_examples

    split = load_examples(qa_corpus(), 0.3)
    assert split.train and split.heldout
    key = lambda e: tuple(e.question)  # noqa: E731
    assert not {key(e) for e in split.train} & {key(e) for e in split.heldout}


def test_bad_adapter_settings_name_the_key(tmp_path, base_ckpt):
    with pytest.raises(ConfigError, match="lora.rank"):
        build("bridge_lora", tmp_path, base_ckpt, "+lora.rank=4")
    with pytest.raises(ConfigError, match="unfreeze.top_k=3"):
        build("core_unfreeze", tmp_path, base_ckpt, "unfreeze.top_k=3")
    with pytest.raises(ConfigError, match="lora.targets"):
        build("bridge_lora", tmp_path, base_ckpt, "lora.targets=[wq,output]")


def test_empty_answers_are_skipped_and_long_ones_cut_and_counted(tmp_path):
    from dualmind.lexicon.symbols import symbol_of
    from dualmind.train.qa_data import EOS, load_examples

    def hp(ids):
        return "".join(symbol_of(i) for i in ids)

    (tmp_path / "manifest.json").write_text(json.dumps(
        {"lexicon": {"fingerprint": "ab12"}, "hypertrain": {"file": "hypertrain.jsonl"}}))
    records = [("What is AI?", [10, 11], "It thinks.", [12, 13]),
               ("Hi", [14], "How are you?", []),  # every answer word dropped by the lexicon
               ("Long?", [15, 16], "x" * 40, list(range(20, 40)))]
    with open(tmp_path / "hypertrain.jsonl", "w") as f:
        for i, (q, qi, a, ai) in enumerate(records):
            f.write(json.dumps({"id": f"r{i}", "kind": "qa", "lang": "en", "text": q,
                                "hyperphrase": hp(qi), "input": q, "target": a,
                                "target_hyperphrase": hp(ai)}) + "\n")
    ex = load_examples(tmp_path, 0.5, answer_eos=True, seq_len=10)
    assert ex.empty == 1 and ex.truncated == 1 and ex.lexicon_fingerprint == "ab12"
    by_q = {int(e.question[0]): e for e in ex.train + ex.heldout}
    assert sorted(by_q) == [10, 15]
    assert by_q[10].answer.tolist() == [12, 13, EOS]
    assert len(by_q[15].question) + len(by_q[15].answer) == 11  # seq_len + 1: one full row
