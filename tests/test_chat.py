"""Chat: history carried between turns and cut oldest-first when the context fills, /reset and
/quit in the terminal loop, and the demo's scripted chat printing user, thought and answer."""

from __future__ import annotations

import argparse
import io

import pytest
from rich.console import Console

from dualmind.bridge.bridge import Bridge
from dualmind.bridge.chat import ChatSession, scripted_chat
from test_bridge_toy import build_toy

pytestmark = pytest.mark.usefixtures("one_thread")
KW = dict(max_symbols=6, max_tokens=6, temperature=0.0)


@pytest.fixture(scope="module")
def bridge():
    lexicon, tok, core, decoder = build_toy(max_seq_len=40)
    return Bridge(lexicon, core, decoder, tok)


def test_history_is_read_and_the_oldest_turns_go_first(bridge):
    session = ChatSession(bridge, dict(KW))
    first = session.ask("Where does the zebra Quillon sleep?")
    assert session.history == [first.prompt_symbols + first.thought_symbols]
    second = session.ask("What does Marisol the baker hide?")
    assert second.timings.context_symbols == (len(session.history[0])
                                              + len(second.prompt_symbols))
    for q in ["Into what does the glacier Tormund melt?", "What does captain Ostrava collect?",
              "What grows in the orchard of Velmira?"]:
        last = session.ask(q)
    assert last.timings.context_symbols <= 40 - 6
    assert any("oldest" in n and "history turn(s) left out" in n for n in last.notes)
    session.reset()
    assert session.history == []
    fresh = session.ask("What grows in the orchard of Velmira?")
    assert fresh.timings.context_symbols == len(fresh.prompt_symbols)


def test_terminal_chat_handles_reset_quit_and_bad_input(bridge, tmp_path):
    from dualmind.bridge import cli_chat

    folder = bridge.save(tmp_path / "bridge")
    parser = argparse.ArgumentParser()
    cli_chat.add_arguments(parser)
    args = parser.parse_args(["--model", str(folder), "--max-symbols", "4", "--max-tokens", "4",
                              "--temperature", "0", "--show-thought"])
    stdin = io.StringIO("Where does the zebra Quillon sleep?\n\n/help\n/reset\n"
                        "What does Marisol hide?\n/quit\nnever read\n")
    stdout = io.StringIO()
    assert cli_chat.run(args, stdin=stdin, stdout=stdout) == 0
    out = stdout.getvalue()
    assert out.count("[thought]") == 2 and out.count("bot> ") == 2
    assert "error: empty prompt" in out and "unknown command '/help'" in out
    assert "(history cleared)" in out and "never read" not in out


def test_scripted_chat_prints_each_turn(bridge):
    buf = io.StringIO()
    console = Console(file=buf, width=200, color_system=None)
    answers = scripted_chat(bridge, ["Where does the zebra Quillon sleep?", "", "What grows?"],
                            console, max_symbols=4, max_tokens=6)
    out = buf.getvalue()
    assert len(answers) == 2  # the empty prompt is reported, not answered
    assert out.count("you     > ") == 3 and out.count("thought > ") == 2
    assert "error   > empty prompt" in out
    for a in answers:
        assert a.thought_gloss in out and a.text.strip()[:5] in out
