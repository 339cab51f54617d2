"""Chat: turns through the same bridge, with history the core reads before each question.

History policy: every turn leaves its question's symbols and the core's thought (the symbols
it produced, not the rendered text re-encoded) in the history. Before each question the context
is assembled by :func:`dualmind.bridge.prompt.assemble`: the thought's room is reserved, the
question is kept (its last symbols if it is too long), then retrieved scenes, then as many whole
past turns as fit, newest first; older turns are left out and a notice says how many.
``/reset`` clears the history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dualmind.bridge.answer import Answer
from dualmind.bridge.errors import BridgeError


@dataclass
class ChatSession:
    bridge: object
    options: dict = field(default_factory=dict)  # generate() keyword arguments for every turn
    history: list[list[int]] = field(default_factory=list)

    def ask(self, prompt: str, on_text: Callable[[str], None] | None = None,
            on_thought: Callable[[str], None] | None = None) -> Answer:
        options = dict(self.options)
        show = options.pop("show_thought", False) or on_thought is not None
        answer = self.bridge.generate(prompt, on_text=on_text, on_thought=on_thought,
                                      show_thought=show, history=list(self.history), **options)
        self.history.append(list(answer.prompt_symbols) + list(answer.thought_symbols))
        return answer

    def reset(self) -> None:
        self.history.clear()


class PrefixedStream:
    """on_text for a chat line: writes ``prefix`` before the first piece, then the pieces."""

    def __init__(self, write: Callable[..., None], prefix: str):
        self.write, self.prefix, self.started = write, prefix, False

    def __call__(self, piece: str) -> None:
        if not self.started:
            self.write(self.prefix, end="")
            self.started = True
        self.write(piece, end="")


class _Printer:
    """console: a rich Console (print(..., end=, markup=, highlight=)), or None for stdout."""

    def __init__(self, console):
        self.console = console

    def __call__(self, text: str = "", end: str = "\n", style: str | None = None) -> None:
        if self.console is None:
            print(text, end=end, flush=True)
            return
        kwargs = {"end": end, "markup": False, "highlight": False, "soft_wrap": True}
        if style is not None:
            kwargs["style"] = style
        self.console.print(text, **kwargs)


def print_turn_start(out: _Printer, prompt: str) -> None:
    out(f"you     > {prompt}", style="bold")


def print_answer_end(out: _Printer, answer: Answer) -> None:
    out("")
    for note in answer.notes:
        out(f"  note: {note}", style="yellow")
    out(f"  ({answer.timings.summary()}; thought stopped: {answer.stopped}, text: "
        f"{answer.text_stopped})", style="dim")


def scripted_chat(bridge, prompts: list[str], console=None, show_thought: bool = True,
                  **options) -> list[Answer]:
    """For the demo: each prompt as a chat turn, printing the user's line, the thought glossed
    and the answer streamed as it is rendered. A prompt the bridge refuses is printed as its
    error and skipped (the chat goes on). ``options``: generate() keyword arguments; turn i
    samples with seed + i (default seed 0), reproducible without every turn drawing alike."""
    out = _Printer(console)
    seed = options.pop("seed", 0)
    session = ChatSession(bridge, options)
    for note in getattr(bridge, "notes", []):
        out(f"note: {note}", style="yellow")
    answers = []
    for turn, prompt in enumerate(prompts):
        if seed is not None:
            session.options["seed"] = seed + turn
        print_turn_start(out, prompt)
        # one line per answer on the demo's screen: line breaks of the text shown as spaces
        stream = PrefixedStream(lambda s, end="": out(s.replace("\n", " "), end=end),
                                "answer  > ")

        def thought(gloss: str) -> None:
            out(f"thought > {gloss or '(no symbols)'}", style="cyan")

        try:
            answer = session.ask(prompt, on_text=stream,
                                 on_thought=thought if show_thought else None)
        except BridgeError as err:
            out(f"error   > {err}", style="red")
            continue
        if not stream.started:
            out("answer  > (nothing rendered)", end="")
        print_answer_end(out, answer)
        answers.append(answer)
    return answers
