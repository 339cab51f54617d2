"""The bridge end to end on a toy model: streaming, thought, timings, reproducibility, the KV
cache against full re-reads, save/load, and the fingerprint checks that tie the pieces together."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from dualmind.bridge.answer import Answer
from dualmind.bridge.bridge import Bridge
from dualmind.bridge.errors import BridgeError
from dualmind.bridge.thinking import think
from test_bridge_toy import align_checkpoint, build_toy

pytestmark = pytest.mark.usefixtures("one_thread")
Q = "Where does the zebra Quillon sleep?"


@pytest.fixture(scope="module")
def toy():
    return build_toy()


@pytest.fixture(scope="module")
def bridge(toy):
    lexicon, tok, core, decoder = toy
    return Bridge(lexicon, core, decoder, tok)


def test_generate_streams_the_answer_and_shows_the_thought(bridge):
    pieces, thoughts = [], []
    answer = bridge.generate(Q, max_symbols=6, max_tokens=12, seed=3, show_thought=True,
                             on_text=pieces.append, on_thought=thoughts.append)
    assert isinstance(answer, Answer)
    assert "".join(pieces) == answer.text and len(pieces) >= 1
    assert 1 <= len(answer.thought_symbols) <= 6 or answer.stopped in ("eos", "boundary")
    assert thoughts == [answer.thought_gloss]
    assert answer.thought_gloss == "·".join(bridge.lexicon.gloss(i)
                                            for i in answer.thought_symbols)
    assert answer.prompt_symbols == bridge.lexicon.encode(Q)
    t = answer.timings
    assert t.context_symbols == len(answer.prompt_symbols)
    assert t.thought_symbols == len(answer.thought_symbols) and t.text_tokens <= 12
    assert 0 < t.think_s < t.total_s and t.render_s > 0
    assert t.first_word_s is None or t.think_s <= t.first_word_s <= t.total_s
    assert "first word" in t.summary()


def test_a_seed_reproduces_the_answer_and_another_seed_differs(bridge):
    a = bridge.generate(Q, max_symbols=8, max_tokens=16, seed=11, temperature=1.0)
    b = bridge.generate(Q, max_symbols=8, max_tokens=16, seed=11, temperature=1.0)
    c = bridge.generate(Q, max_symbols=8, max_tokens=16, seed=12, temperature=1.0)
    assert (a.text, a.thought_symbols) == (b.text, b.thought_symbols)
    assert (a.text, a.thought_symbols) != (c.text, c.thought_symbols)


def test_render_temperature_changes_the_saying_not_the_thought(bridge):
    greedy = bridge.generate(Q, max_symbols=8, max_tokens=16, seed=5, temperature=0.0)
    same = bridge.generate(Q, max_symbols=8, max_tokens=16, seed=5, temperature=0.0,
                           render_temperature=0.0)
    assert (same.text, same.thought_symbols) == (greedy.text, greedy.thought_symbols)
    hot = [bridge.generate(Q, max_symbols=8, max_tokens=16, seed=s, temperature=0.0,
                           render_temperature=50.0, top_k=None) for s in (5, 6)]
    assert all(h.thought_symbols == greedy.thought_symbols for h in hot)
    assert {h.text for h in hot} != {greedy.text}  # a hot saying strays from the greedy one
    with pytest.raises(BridgeError, match="render_temperature"):
        bridge.generate(Q, max_symbols=4, render_temperature=-1.0)


def test_kv_cache_thinks_the_same_thought_as_full_rereads(bridge):
    ctx = bridge.lexicon.encode(Q)
    cached = think(bridge.core, ctx, 10, temperature=0.0, stop_ids=())
    full = think(bridge.core, ctx, 10, temperature=0.0, stop_ids=(), use_cache=False)
    assert cached.ids == full.ids and len(cached.ids) == 10
    assert cached.states.shape == full.states.shape == (1, len(ctx) + 10, bridge.core.cfg.dim)
    torch.testing.assert_close(cached.states, full.states, atol=1e-4, rtol=1e-4)


def test_a_closed_thought_ends_its_states_with_the_closing_symbols(bridge):
    """close_with: one more state after the thought (not one more symbol of it), the same with
    the cache as re-reading everything."""
    ctx = bridge.lexicon.encode(Q)
    cached = think(bridge.core, ctx, 6, temperature=0.0, stop_ids=(), close_with=2)
    full = think(bridge.core, ctx, 6, temperature=0.0, stop_ids=(), close_with=2,
                 use_cache=False)
    assert cached.ids == full.ids and len(cached.ids) == 6
    assert cached.states.shape[1] == full.states.shape[1] == len(ctx) + 6 + 1
    torch.testing.assert_close(cached.states, full.states, atol=1e-4, rtol=1e-4)


def test_read_modes_give_the_decoder_different_states(bridge):
    kw = dict(max_symbols=5, max_tokens=10, temperature=0.0)
    turn = bridge.generate(Q, read="turn", **kw)
    thought = bridge.generate(Q, read="thought", **kw)
    assert turn.thought_symbols == thought.thought_symbols
    with pytest.raises(BridgeError, match="read must be one of"):
        bridge.generate(Q, read="everything", **kw)


def test_the_decoder_reads_the_thought_closed_by_the_cores_eos(bridge, monkeypatch):
    """As alignment reads a whole record: the thought's units, then the core's EOS (whatever
    stopped the thought), so the rendering ends at the thought's last unit."""
    from dualmind.bridge import bridge as bridge_module
    from dualmind.model.decoder_session import RECORD_END

    read = {}
    real = bridge_module.render

    def spy(decoder, tokenizer, states, *args, core_ids=None, **kw):
        read.update(states=states, core_ids=core_ids)
        return real(decoder, tokenizer, states, *args, core_ids=core_ids, **kw)

    monkeypatch.setattr(bridge_module, "render", spy)
    answer = bridge.generate(Q, max_symbols=5, max_tokens=4, temperature=0.0, read="thought")
    assert read["core_ids"][0].tolist() == [*answer.thought_symbols, RECORD_END]
    assert read["states"].shape[1] == len(answer.thought_symbols) + 1


def test_reading_kl_is_zero_for_one_context_and_positive_for_two_a_core_reads(bridge):
    """A core that reads its contexts gives them different next-symbol distributions (the toy
    core's random weights read everything); the same context twice gives none."""
    from dualmind.bridge.thinking import reading_kl

    a, b = bridge.encode(Q).ids, bridge.encode("zebra lighthouse").ids
    assert reading_kl(bridge.core, [a, a], len(bridge.lexicon)) == pytest.approx(0.0, abs=1e-6)
    assert reading_kl(bridge.core, [a, b], len(bridge.lexicon)) > 0.01
    with pytest.raises(ValueError, match="two contexts"):
        reading_kl(bridge.core, [a])


def test_save_and_from_pretrained_give_the_same_answers(bridge, tmp_path):
    folder = bridge.save(tmp_path / "bridge")
    spec = json.loads((folder / "bridge.json").read_text())
    assert spec["core_fingerprint"] == bridge.core_fingerprint and spec["adapter"] is False
    assert {p.name for p in folder.iterdir()} >= {"lexicon", "model", "tokenizer.json"}
    loaded = Bridge.from_pretrained(folder)
    kw = dict(max_symbols=6, max_tokens=12, seed=5)
    assert loaded.generate(Q, **kw).text == bridge.generate(Q, **kw).text
    spec["core_fingerprint"] = "0" * 16
    (folder / "bridge.json").write_text(json.dumps(spec))
    with pytest.raises(BridgeError, match="core_fingerprint"):
        Bridge.from_pretrained(folder)


def test_from_checkpoints_checks_lexicon_and_core_fingerprints(toy, tmp_path):
    lexicon, tok, core, decoder = toy
    tok.save(str(tmp_path / "tokenizer.json"))  # found through the recorded data.dir
    lexicon.save(tmp_path / "lexicon")
    good = align_checkpoint(tmp_path / "good.ckpt", lexicon, core, decoder, data_dir=tmp_path)
    bridge = Bridge.from_checkpoints(tmp_path / "lexicon", good)
    assert bridge.notes == [] and bridge.tokenizer_path == tmp_path / "tokenizer.json"
    from dualmind.checkpoint.export import export_checkpoint

    exported = Bridge.from_checkpoints(tmp_path / "lexicon",
                                       export_checkpoint(good, tmp_path / "export"))
    assert exported.core_fingerprint == bridge.core_fingerprint
    assert exported.tokenizer_path == tmp_path / "tokenizer.json"  # via source_checkpoint

    other = align_checkpoint(tmp_path / "other.ckpt", lexicon, core, decoder,
                             core_fingerprint="feedfacefeedface", data_dir=tmp_path)
    with pytest.raises(BridgeError, match="feedfacefeedface.*" + bridge.core_fingerprint):
        Bridge.from_checkpoints(tmp_path / "lexicon", other)

    old = align_checkpoint(tmp_path / "old.ckpt", lexicon, core, decoder, core_fingerprint=None,
                           data_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        legacy = Bridge.from_checkpoints(tmp_path / "lexicon", old)
    assert any("no core_fingerprint" in str(w.message) for w in caught)
    assert legacy.notes and "continuing" in legacy.notes[0]

    from dualmind.lexicon.lexicon import Lexicon

    Lexicon.build(["a different little corpus of words"], level="semantic",
                  vocab_size=300).save(tmp_path / "other_lexicon")
    with pytest.raises(BridgeError, match="lexicon mismatch"):
        Bridge.from_checkpoints(tmp_path / "other_lexicon", good)


def test_a_core_checkpoint_without_decoder_is_refused(toy, tmp_path):
    lexicon, tok, core, decoder = toy
    path = align_checkpoint(tmp_path / "core.ckpt", lexicon, core, decoder)
    ckpt = torch.load(path, weights_only=True)
    ckpt["dualmind"]["stage"] = "core"
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("core.")}
    torch.save(ckpt, path)
    lexicon.save(tmp_path / "lexicon")
    with pytest.raises(BridgeError, match="core.ckpt"):
        Bridge.from_checkpoints(tmp_path / "lexicon", path)


def test_cli_generate_prints_thought_and_answer(bridge, tmp_path, capsys):
    from dualmind.cli import main

    folder = bridge.save(tmp_path / "bridge")
    rc = main(["generate", Q, "--model", str(folder), "--show-thought", "--max-symbols", "4",
               "--max-tokens", "8", "--seed", "1", "--timings"])
    out = capsys.readouterr().out
    assert rc == 0 and "[thought]" in out and "first word" in out
    rc = main(["generate", "   ", "--model", str(folder)])
    assert rc == 2 and "empty prompt" in capsys.readouterr().err
    rc = main(["generate", Q, "--model", str(folder), "--retrieve", "2"])
    assert rc == 2 and "--index" in capsys.readouterr().err
