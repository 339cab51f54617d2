"""model.unit_pieces: each unit's embedding and head row is its own row plus the mean of its
surface's pieces (dualmind.model.unit_pieces). The rows, the forward that uses them for both the
input and the head, gradients shared through a piece, the no-grad cache, the chunked loss, the
config checks, and a core run that fills the table from its lexicon and exports it."""

from __future__ import annotations

import pytest
import torch

from dualmind.checkpoint.export import export_checkpoint, load_core
from dualmind.model.config import ConfigError, CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.loss import next_symbol_nll
from dualmind.train.loop import train
from test_train_support import tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")
TABLE = torch.tensor([[-1, -1], [0, -1], [0, 1], [2, 1], [-1, -1], [3, 3]])  # 6 units, 2 slots


def _core(**kw) -> HyperCore:
    torch.manual_seed(0)
    cfg = CoreConfig(vocab_size=6, dim=16, n_layers=1, n_heads=2, ffn_dim=32, max_seq_len=16,
                     tie_embeddings=True, unit_pieces=2, piece_vocab=4, **kw)
    core = HyperCore(cfg)
    core.unit_pieces.set_table(TABLE)
    return core


def test_a_units_row_is_its_own_plus_the_mean_of_its_pieces():
    core = _core()
    own, pieces = core.tok_embeddings.weight, core.unit_pieces.pieces.weight
    rows = core.unit_rows()
    assert torch.allclose(rows[0], own[0]) and torch.allclose(rows[4], own[4])  # no pieces
    assert torch.allclose(rows[1], own[1] + pieces[0])
    assert torch.allclose(rows[2], own[2] + (pieces[0] + pieces[1]) / 2)
    assert torch.allclose(rows[5], own[5] + pieces[3])  # a piece twice counts twice, over two
    assert not torch.allclose(rows[2], own[2])


def test_the_forward_embeds_and_predicts_with_the_composed_rows():
    core = _core()
    ids = torch.tensor([[1, 2, 3, 5]])
    out = core(ids, return_hidden_states=True)
    rows = core.unit_rows()
    assert torch.allclose(out.hidden_states[0], rows[ids])
    assert torch.allclose(out.logits, out.hidden @ rows.T, atol=1e-6)
    assert torch.allclose(core.head(out.hidden), out.logits) and torch.equal(
        core.embed(ids), out.hidden_states[0])


def test_a_shared_piece_learns_from_every_unit_that_holds_it():
    core = _core()
    loss = core(torch.tensor([[2, 3, 2]])).logits[0, -1, 1]  # reads units 2 and 3, scores 1
    loss.backward()
    grad = core.unit_pieces.pieces.weight.grad
    assert grad[1].abs().sum() > 0 and grad[0].abs().sum() > 0  # pieces of the units read
    assert grad[4].abs().sum() == 0  # the padding row never moves


def test_rows_are_cached_without_grad_until_a_weight_changes():
    core = _core()
    with torch.no_grad():
        first = core.unit_rows()
        assert core.unit_rows() is first
        core.unit_pieces.pieces.weight[0] += 1.0
        second = core.unit_rows()
    assert second is not first and not torch.allclose(second[1], first[1])
    assert core.unit_rows() is not second  # with grad: computed anew, for autograd


def test_the_chunked_loss_equals_the_full_one_with_pieces():
    core = _core()
    ids, targets = torch.tensor([[1, 2, 3, 5, 2]]), torch.tensor([[2, 3, 5, 2, 1]])
    full = next_symbol_nll(core, ids, targets)
    chunked = next_symbol_nll(core, ids, targets, chunk=2)
    assert torch.allclose(full, chunked, rtol=1e-5)


def test_the_config_names_what_pieces_need():
    with pytest.raises(ConfigError, match="tie_embeddings"):
        CoreConfig(vocab_size=6, dim=16, n_layers=1, n_heads=2, ffn_dim=32, unit_pieces=2,
                   piece_vocab=4)
    with pytest.raises(ConfigError, match="piece_vocab"):
        CoreConfig(vocab_size=6, dim=16, n_layers=1, n_heads=2, ffn_dim=32, unit_pieces=2,
                   tie_embeddings=True)
    core = _core()
    assert core.num_params() == core.cfg.num_params()
    with pytest.raises(ValueError, match="piece_vocab"):
        core.unit_pieces.set_table(torch.full((6, 2), 4))


def test_a_core_run_reads_its_pieces_from_the_lexicon_and_exports_them(tmp_path):
    from dualmind.train.surfaces import find_corpus_lexicon, surface_table
    from test_train_support import tiny_corpus

    result = train(tiny_overrides(tmp_path / "run", "model.unit_pieces=3",
                                  "model.piece_vocab=512", "trainer.max_steps=2",
                                  "trainer.val_check_interval=100"))
    corpus = tiny_corpus()
    from dualmind.data.text_tokenizer import load_text_tokenizer
    from dualmind.lexicon.lexicon import Lexicon

    expected = surface_table(Lexicon.load(find_corpus_lexicon(corpus)),
                             load_text_tokenizer(corpus / "tokenizer.json"), 3, rows=1024)
    assert (expected[:, 0] >= 0).sum() > 500  # most units have pieces
    core, _ = load_core(export_checkpoint(result.last_checkpoint, tmp_path / "export"))
    assert torch.equal(core.unit_pieces.table, expected)
    from dualmind.checkpoint.export import ExportError
    from dualmind.checkpoint.export_hf import export_hf

    with pytest.raises(ExportError, match="unit_pieces"):  # a Llama folder cannot hold them
        export_hf(result.last_checkpoint, tmp_path / "hf", find_corpus_lexicon(corpus))
    from dualmind.train.unit_pieces_setup import adopt_unit_pieces

    for stage, adopted in (("align", 3), ("adapt_lora", 3), ("core", 0)):
        cfg = {"stage": stage, "model": {"dim": 64},
               "core": {"checkpoint": str(result.last_checkpoint)}}
        adopt_unit_pieces(cfg)  # a stage reading this core builds it with the core's pieces
        assert cfg["model"].get("unit_pieces", 0) == adopted
        assert cfg["model"].get("piece_vocab", 0) == (512 if adopted else 0)
    with pytest.raises(Exception, match="piece_vocab"):
        train(tiny_overrides(tmp_path / "small", "model.unit_pieces=3", "model.piece_vocab=100",
                             "trainer.max_steps=1"))


def test_a_llama_export_refuses_a_core_whose_rows_are_composed():
    from dualmind.model.llama_format import to_hf_state_dict

    core = _core()
    with pytest.raises(ValueError, match="unit_pieces"):
        to_hf_state_dict(core.state_dict(), core.cfg)
