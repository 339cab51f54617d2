"""The second half of `make demo`: the language head and the tools around the trained pair.

6. align the mini language decoder to the frozen core (stage align)
7. render held-out scenes from the core's states alone, beside the original text
8. a visualiser report of one prompt (logit lens, attention, cross-attention)
9. a short scripted chat through the bridge, with the core's thought shown

Each step reads what the steps before it wrote under the demo's output folder.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

# Questions for the scripted chat, in the spirit of the demo's QA pairs: English, Russian, and a
# second English one (whether the core reads its prompts is measured between the English ones).
CHAT_PROMPTS = [
    "What is the night full of?",
    "Почему мне тревожно перед сном?",
    "Who is the king?",
]
VIZ_PROMPT = "The night was dark and full of waiting."


def align_decoder(out: Path, console: Console, steps: int | None = None,
                  seconds: float | None = None):
    """Train recipe=decoder_align on the demo corpus against the core the demo just pretrained."""
    from dualmind.train.loop import train

    core = out / "core_mini" / "checkpoints" / "last.ckpt"
    overrides = [
        "recipe=decoder_align",
        f"data.dir={out / 'corpus'}",
        f"core.checkpoint={core}",
        f"run_dir={out / 'decoder_align'}",
        f"data.lexicon={out / 'lexicon-semantic'}",  # the copy channel reads its surfaces
    ]
    if steps:
        overrides.append(f"trainer.max_steps={steps}")
    if seconds:
        overrides.append(f"trainer.time_budget_s={seconds}")
    result = train(overrides)
    console.print(result.summary(), markup=False)
    return result


def render_held_out(out: Path, console: Console, scenes: int = 3) -> None:
    from dualmind.evaluate.render import show_scenes

    text = show_scenes(
        out / "decoder_align", out / "corpus", scenes=scenes, lexicon_dir=out / "lexicon-semantic"
    )
    console.print(text, markup=False)


def scripted_chat(out: Path, console: Console) -> None:
    from dualmind.bridge.bridge import Bridge
    from dualmind.bridge.chat import scripted_chat as chat

    bridge = Bridge.from_checkpoints(
        out / "lexicon-semantic", out / "decoder_align" / "checkpoints" / "last.ckpt"
    )
    bridge.save(out / "bridge")
    console.print(f"bridge assembled and saved to {out / 'bridge'} "
                  f"(try: dualmind chat --model {out / 'bridge'})")
    chat(bridge, CHAT_PROMPTS, console)
    say_whether_the_core_reads(bridge, console)


def say_whether_the_core_reads(bridge, console: Console) -> None:
    """One measured line under the chat: do the English prompts change what the core would say
    next? A briefly trained core thinks the same thought whatever it is asked."""
    from dualmind.bridge.thinking import reading_kl

    english = [p for p in CHAT_PROMPTS if p.isascii()]
    kl = reading_kl(bridge.core, [bridge.encode(p).ids for p in english], len(bridge.lexicon))
    verdict = ("it does not read them yet: every prompt gets the same next-symbol distribution, "
               "and a thought is a draw from its symbol frequencies" if kl < 0.01 else
               "it reads them")
    console.print(f"does the core read its prompts? KL between its next-symbol distributions "
                  f"after the English ones: {kl:.4f} nats; {verdict} (benchmarks/"
                  "question_reading.py; RESULTS.md, question_reading)", markup=False)


def visualise(out: Path, console: Console) -> Path:
    from dualmind.viz.report import write_report

    index = write_report(
        out / "decoder_align" / "checkpoints" / "last.ckpt",
        VIZ_PROMPT,
        out / "report",
        lexicon_dir=out / "lexicon-semantic",
    )
    size = sum(p.stat().st_size for p in index.parent.rglob("*") if p.is_file())
    console.print(f"visualiser report: {index} ({size / 1e3:.0f} kB, opens offline in any browser)")
    return index
