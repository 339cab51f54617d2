"""Thoughts end (issue 13, item 4): the core was pretrained with an EOS after every record, so a
thought stops when the core draws it; the EOS is not part of the thought, and PAD, BOS and UNK,
which no record holds, are never drawn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dualmind.bridge.bridge import Bridge
from dualmind.bridge.thinking import BOS, EOS, PAD, UNK, think
from test_bridge_toy import build_toy

pytestmark = pytest.mark.usefixtures("one_thread")
SCRIPT = [10, 11, 12]  # what the scripted core says before it ends


class Scripted(nn.Module):
    """The core's head plus a bias: draw k favours SCRIPT[k] (EOS once the script is done);
    PAD, BOS, UNK and ids from `beyond` on are favoured above everything, so drawing any of
    them shows they were not masked."""

    def __init__(self, head: nn.Module, beyond: int):
        super().__init__()
        self.head, self.beyond, self.calls = head, beyond, 0

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden)
        bias = torch.zeros_like(logits)
        bias[..., [PAD, BOS, UNK]] = 200.0
        bias[..., self.beyond:] = 300.0
        draw = self.calls  # call k gives the logits of draw k (call 0: after the context)
        bias[..., SCRIPT[draw] if draw < len(SCRIPT) else EOS] = 100.0
        self.calls += 1
        return logits + bias


@pytest.fixture()
def toy():
    lexicon, tok, core, decoder = build_toy()
    core.output = Scripted(core.output, beyond=len(lexicon))
    return lexicon, tok, core, decoder


@pytest.mark.parametrize("temperature,use_cache", [(0.0, True), (0.8, True), (0.0, False)])
def test_a_thought_stops_at_the_eos_the_core_favours(toy, temperature, use_cache):
    lexicon, _, core, _ = toy
    ctx = lexicon.encode("The night was dark and full of waiting.")
    thought = think(core, ctx, 20, temperature=temperature, use_cache=use_cache,
                    vocab_limit=len(lexicon), generator=torch.Generator().manual_seed(0))
    assert thought.ids == SCRIPT and thought.stopped == "eos"  # early, and EOS left out
    assert thought.states.shape[1] == len(ctx) + len(SCRIPT)


def test_without_an_eos_a_thought_runs_to_max_symbols(toy):
    lexicon, _, core, _ = toy
    ctx = lexicon.encode("The night was dark and full of waiting.")
    thought = think(core, ctx, 2, temperature=0.0, vocab_limit=len(lexicon))
    assert thought.ids == SCRIPT[:2] and thought.stopped == "max_symbols"


def test_the_bridge_answer_says_its_thought_ended_at_eos(toy):
    lexicon, tok, core, decoder = toy
    answer = Bridge(lexicon, core, decoder, tok).generate(
        "Where does the zebra Quillon sleep?", max_symbols=16, max_tokens=4, temperature=0.0)
    assert answer.thought_symbols == SCRIPT and answer.stopped == "eos"
    assert answer.timings.thought_symbols == len(SCRIPT)
