"""Retrieval by pooled core states: planted facts among distractors are found by questions that
share their content words (recall@k on a toy core), pooling ignores padding, the index round-trips
through its folder and refuses another core, and --retrieve puts scenes before the question."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dualmind.bridge.bridge import Bridge
from dualmind.bridge.errors import BridgeError
from dualmind.bridge.retrieval import SceneIndex, SceneRecord, pooled_states
from test_bridge_toy import DISTRACTORS, FACTS, QUESTIONS, build_toy

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bridge():
    lexicon, tok, core, decoder = build_toy()
    return Bridge(lexicon, core, decoder, tok)


@pytest.fixture(scope="module")
def index(bridge):
    lex = bridge.lexicon
    records = [SceneRecord(f"fact:{i}", lex.encode(t), t) for i, t in enumerate(FACTS)]
    records += [SceneRecord(f"other:{i}", lex.encode(t), t) for i, t in enumerate(DISTRACTORS)]
    return SceneIndex.build(bridge.core, records, bridge.core_fingerprint, lex.fingerprint,
                            batch_size=4)


def recall(bridge, index, k: int) -> float:
    found = 0
    for i, q in enumerate(QUESTIONS):
        keys = [h.key for h in index.search(bridge.core, bridge.lexicon.encode(q), k)]
        found += f"fact:{i}" in keys
    return found / len(QUESTIONS)


def test_planted_facts_are_found_by_their_questions(bridge, index):
    # The index pools the symbol embeddings by default (a bag of symbols), so a question sharing
    # a fact's content lemmas lands nearest to it. Pooling the wrong positions (padding, one
    # position only) breaks this.
    r1, r3 = recall(bridge, index, 1), recall(bridge, index, 3)
    print(f"toy planted facts: recall@1 {r1:.2f}, recall@3 {r3:.2f} "
          f"({len(FACTS)} facts among {len(DISTRACTORS)} distractors)")
    assert r1 >= 0.8 and r3 == 1.0


@pytest.mark.parametrize("layer", [0, 2, None])
def test_pooling_ignores_padding_and_identical_sequences_match_exactly(bridge, layer):
    lex = bridge.lexicon
    short, long_ = lex.encode(FACTS[0]), lex.encode(" ".join(DISTRACTORS[:4]))
    alone = pooled_states(bridge.core, [short], layer=layer)
    batched = pooled_states(bridge.core, [long_, short, short], batch_size=8, layer=layer)
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5)
    np.testing.assert_allclose(batched[2], batched[1], atol=1e-6)
    assert abs(float(np.linalg.norm(batched[0])) - 1.0) < 1e-5
    assert float(batched[0] @ batched[1]) < 0.999  # different scenes, different vectors


def test_a_scene_is_its_own_nearest_neighbour(bridge, index):
    for rec in index.records[:8]:
        top = index.search(bridge.core, rec.units, 1)[0]
        assert top.key == rec.key and top.score == pytest.approx(1.0, abs=1e-4)


def test_the_index_round_trips_and_refuses_another_core(bridge, index, tmp_path):
    index.save(tmp_path / "idx")
    loaded = SceneIndex.load(tmp_path / "idx")
    assert [r.key for r in loaded.records] == [r.key for r in index.records]
    assert [r.units for r in loaded.records] == [r.units for r in index.records]
    q = bridge.lexicon.encode(QUESTIONS[2])
    assert ([h.key for h in loaded.search(bridge.core, q, 3)]
            == [h.key for h in index.search(bridge.core, q, 3)])
    with pytest.raises(BridgeError, match="rebuild the index"):
        loaded.check_core("0123456789abcdef")
    (tmp_path / "idx" / "units_offsets.npy").unlink()
    with pytest.raises(BridgeError, match="units_offsets.npy: missing"):
        SceneIndex.load(tmp_path / "idx")


def test_retrieve_puts_the_nearest_scenes_before_the_question(bridge, index):
    q = QUESTIONS[1]
    plain = bridge.generate(q, max_symbols=4, max_tokens=4, temperature=0.0)
    answer = bridge.generate(q, max_symbols=4, max_tokens=4, temperature=0.0, retrieve=2,
                             index=index)
    assert [r.key for r in answer.retrieved][0] == "fact:1"
    scene_symbols = sum(len(index.records[[r.key for r in index.records].index(h.key)].units)
                        for h in answer.retrieved)
    assert answer.timings.context_symbols == len(plain.prompt_symbols) + scene_symbols
    with pytest.raises(BridgeError, match="needs an index"):
        bridge.generate(q, max_symbols=4, max_tokens=4, retrieve=2)


def test_retrieved_scenes_that_do_not_fit_are_left_out_farthest_first(index):
    lexicon, tok, core, decoder = build_toy(max_seq_len=24)
    small = Bridge(lexicon, core, decoder, tok)
    small.core_fingerprint = index.core_fingerprint  # same weights (seeded), same embedding
    assert torch.equal(small.core.tok_embeddings.weight[:5],
                       build_toy()[2].tok_embeddings.weight[:5])
    answer = small.generate(QUESTIONS[0], max_symbols=8, max_tokens=2, temperature=0.0,
                            retrieve=5, index=index)
    assert answer.timings.context_symbols <= 24 - 8
    assert 1 <= len(answer.retrieved) < 5
    assert any("retrieved scene(s) left out (the farthest)" in n for n in answer.notes)


def test_the_index_command_builds_and_describes_an_index(bridge, index, tmp_path, monkeypatch,
                                                         capsys):
    from dualmind.bridge import retrieval
    from dualmind.cli import main

    folder = bridge.save(tmp_path / "bridge")
    monkeypatch.setattr(retrieval, "corpus_records",  # a corpus build takes too long for here
                        lambda *a, **k: (index.records, bridge.lexicon.fingerprint))
    out = tmp_path / "idx"
    assert main(["index", "build", "--model", str(folder), "--corpus", "unused", "--out",
                 str(out)]) == 0
    assert f"indexed {len(index)} scenes" in capsys.readouterr().out
    assert main(["index", "info", str(out)]) == 0
    assert f"{len(index)} scenes, dim 64 (layer 0)" in capsys.readouterr().out
    assert main(["index", "build", "--model", str(folder), "--corpus", "unused", "--out",
                 str(tmp_path / "final"), "--layer", "final"]) == 0
    assert main(["index", "info", str(tmp_path / "final")]) == 0
    assert "(final-norm states)" in capsys.readouterr().out.splitlines()[-1]
    with pytest.raises(SystemExit):
        main(["index", "build", "--model", str(folder), "--corpus", "c", "--out", "x",
              "--layer", "last"])
    assert "expected a block number or 'final', got 'last'" in capsys.readouterr().err
    rc = main(["generate", QUESTIONS[3], "--model", str(folder), "--retrieve", "1", "--index",
               str(out), "--max-symbols", "2", "--max-tokens", "2"])
    assert rc == 0 and "[retrieved 1]" in capsys.readouterr().out
    monkeypatch.setattr(retrieval, "corpus_records", lambda *a, **k: (index.records, "f" * 64))
    assert main(["index", "build", "--model", str(folder), "--corpus", "c", "--out",
                 str(tmp_path / "x")]) == 2
    assert "was built with lexicon ffff" in capsys.readouterr().err


def test_an_index_of_the_final_states_pools_them_and_remembers_it(bridge, tmp_path):
    lex = bridge.lexicon
    records = [SceneRecord(f"fact:{i}", lex.encode(t), t) for i, t in enumerate(FACTS)]
    records += [SceneRecord(f"other:{i}", lex.encode(t), t) for i, t in enumerate(DISTRACTORS)]
    final_index = SceneIndex.build(bridge.core, records, bridge.core_fingerprint, layer=None)
    final = pooled_states(bridge.core, [records[0].units], layer=None)
    first = pooled_states(bridge.core, [records[0].units])
    assert float(final[0] @ first[0]) < 0.99  # another layer, other vectors
    assert first[0] == pytest.approx(pooled_states(bridge.core, [records[0].units], layer=0)[0])
    loaded = SceneIndex.load(final_index.save(tmp_path / "final"))
    assert loaded.layer is None
    q = lex.encode(QUESTIONS[4])
    assert loaded.search(bridge.core, q, 1)[0].score == pytest.approx(
        final_index.search(bridge.core, q, 1)[0].score, abs=1e-5)
    with pytest.raises(BridgeError, match="layer must be in"):
        pooled_states(bridge.core, [q], layer=bridge.core.cfg.n_layers + 1)
