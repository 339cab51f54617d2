"""`dualmind chat --model DIR`: an interactive loop in the terminal.

Type a question; the answer streams as the decoder renders it. ``/reset`` forgets the history,
``/quit`` (or end of input) leaves. History: see :mod:`dualmind.bridge.chat` (oldest whole turns
are left out first when the core's context fills; a note says so).
"""

from __future__ import annotations

import argparse
import sys

from dualmind.bridge.chat import ChatSession, PrefixedStream
from dualmind.bridge.cli_common import (
    add_model_arguments,
    add_sampling_arguments,
    fail,
    load_bridge,
    sampling_options,
)
from dualmind.bridge.errors import BridgeError

HELP = "commands: /reset (forget the history), /quit (leave)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_sampling_arguments(parser)


def run(args: argparse.Namespace, stdin=None, stdout=None) -> int:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout

    def say(text: str = "", end: str = "\n") -> None:
        stdout.write(text + end)
        stdout.flush()

    try:
        bridge = load_bridge(args)
    except BridgeError as err:
        return fail("chat", err)
    for note in bridge.notes:
        say(f"note: {note}")
    session = ChatSession(bridge, sampling_options(args))
    say(f"dualmind chat — {HELP}")
    while True:
        say("you> ", end="")
        line = stdin.readline()
        if not line:  # end of input
            say()
            return 0
        prompt = line.strip()
        if prompt in ("/quit", "/exit"):
            return 0
        if prompt == "/reset":
            session.reset()
            say("(history cleared)")
            continue
        if prompt.startswith("/"):
            say(f"unknown command {prompt!r}; {HELP}")
            continue
        stream = PrefixedStream(say, "bot> ")

        def thought(gloss: str) -> None:
            say(f"[thought] {gloss or '(no symbols)'}")

        try:
            answer = session.ask(prompt, on_text=stream,
                                 on_thought=thought if args.show_thought else None)
        except BridgeError as err:
            say(f"error: {err}")
            continue
        if not stream.started:
            say("bot> (nothing rendered)", end="")
        say()
        for note in answer.notes:
            say(f"note: {note}")
