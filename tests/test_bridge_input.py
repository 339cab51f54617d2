"""Bad input through the bridge: clear BridgeErrors or stated notes, never a crash."""

from __future__ import annotations

import pytest

from dualmind.bridge.bridge import Bridge
from dualmind.bridge.errors import BridgeError
from dualmind.bridge.prompt import UNK, assemble
from test_bridge_toy import build_toy

pytestmark = pytest.mark.usefixtures("one_thread")
KW = dict(max_tokens=4, temperature=0.0)


@pytest.fixture(scope="module")
def bridge():
    lexicon, tok, core, decoder = build_toy(max_seq_len=48)
    return Bridge(lexicon, core, decoder, tok)


@pytest.mark.parametrize("prompt", ["", "   \n\t"])
def test_empty_prompt_is_refused(bridge, prompt):
    with pytest.raises(BridgeError, match="empty prompt"):
        bridge.generate(prompt, **KW)


def test_a_prompt_of_no_symbols_is_refused(bridge):
    with pytest.raises(BridgeError, match="encodes to no symbols"):
        bridge.generate("?! ... ,", **KW)


def test_a_prompt_longer_than_the_context_keeps_its_last_symbols(bridge):
    words = " ".join(["zebra copper lighthouse saffron violin glacier emerald"] * 12)
    ids = bridge.lexicon.encode(words)
    room = bridge.core.cfg.max_seq_len - 8 - 1  # the thought's 8 symbols and its closing EOS
    assert len(ids) > room
    answer = bridge.generate(words, max_symbols=8, **KW)
    assert answer.prompt_symbols == ids[-room:]
    assert answer.timings.context_symbols == room
    assert any(f"kept its last {room}" in n for n in answer.notes)


def test_unknown_hyperphrase_symbols_are_read_as_unk_and_counted(bridge):
    known = bridge.lexicon.to_hyperphrase(bridge.lexicon.encode("zebra lighthouse"))
    from dualmind.lexicon.symbols import symbol_of

    beyond = symbol_of(len(bridge.lexicon) + 5) + symbol_of(len(bridge.lexicon) + 9)
    answer = bridge.generate(known + beyond, max_symbols=2, **KW)
    assert answer.unknown_symbols == 2
    assert answer.prompt_symbols[-2:] == [UNK, UNK]
    assert any("not in this lexicon" in n for n in answer.notes)


def test_words_the_lexicon_never_saw_are_counted_as_spelled(bridge):
    answer = bridge.generate("zyxwvut qqqplorf", max_symbols=2, **KW)
    assert any("spelled with pieces" in n for n in answer.notes)


@pytest.mark.parametrize("bad, match", [
    (dict(temperature=-1.0), "temperature"), (dict(top_p=1.5), "top_p"),
    (dict(top_k=-3), "top_k"), (dict(max_symbols=0), "max_symbols"),
    (dict(max_symbols=48), "no room"),
])
def test_bad_options_are_refused(bridge, bad, match):
    kw = dict(KW, max_symbols=4) | bad
    with pytest.raises(BridgeError, match=match):
        bridge.generate("zebra lighthouse", **kw)


def test_an_adapter_that_is_missing_or_for_another_core_is_refused(bridge, tmp_path):
    from dualmind.bridge.loading import apply_adapter

    with pytest.raises(BridgeError, match="no such folder"):
        apply_adapter(bridge.core, tmp_path / "nothing")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    # Either dualmind.adapters is missing (said so) or it refuses a folder that is not an adapter
    # of this core: both are BridgeErrors naming the folder, neither a traceback.
    with pytest.raises(BridgeError, match="adapter"):
        apply_adapter(bridge.core, tmp_path / "adapter")


def test_truncation_order_question_then_retrieved_then_history():
    q, scenes, turns = [9] * 4, [[1] * 3, [2] * 3, [3] * 5], [[4] * 2, [5] * 2, [6] * 2]
    ctx = assemble(q, room=4 + 6 + 4, retrieved=scenes, history=turns)
    # nearest two scenes fit (3+3), then the newest two turns (2+2); layout: history, scenes, q
    assert ctx.ids == [5, 5, 6, 6] + [2] * 3 + [1] * 3 + q
    assert (ctx.retrieved_kept, ctx.history_kept) == (2, 2)
    assert any("1 of 3 retrieved" in n for n in ctx.notes)
    assert any("oldest 1 of 3 history" in n for n in ctx.notes)
    whole = assemble(q, room=30, retrieved=scenes, history=turns)
    assert whole.notes == [] and len(whole.ids) == 4 + 11 + 6
    cut = assemble(list(range(10)), room=4, retrieved=scenes, history=turns)
    assert cut.ids == [6, 7, 8, 9] and cut.retrieved_kept == cut.history_kept == 0
    with pytest.raises(BridgeError, match="no room"):
        assemble(q, room=0)
