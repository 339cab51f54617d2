"""The core thinks: it continues the context in hyperphrase symbols, one symbol at a time.

With the KV cache (the default) the context is read once and each new symbol costs one
position; without it every step re-reads everything (kept for the speed benchmark and as a
reference the tests compare against). Either way the hidden states of every position — the
context and the thought — come back, because the decoder reads them.

Stops: the EOS symbol, which the core was pretrained to put after every record (scene or QA
answer; data.datamodule), so a thought ends where the core would end a scene; or
``max_symbols``. The stop symbol is not part of the thought. PAD, BOS and UNK are never drawn:
the core never learned to predict them (no record holds them), and a thought of them would say
nothing the decoder could render. A core pretrained before records ended in EOS rarely draws it,
and its thoughts run to ``max_symbols``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dualmind.bridge.sampling import pick

PAD, BOS, EOS, UNK = 0, 1, 2, 3  # Lexicon's reserved ids, the same in every lexicon
NEVER_DRAWN = (PAD, BOS, UNK)


@dataclass
class Thought:
    ids: list[int]  # the new symbols, stop symbol excluded
    states: torch.Tensor  # [1, context + len(ids) (+ 1 closing), D]: every position's state
    stopped: str  # "eos" | "boundary" (another id of stop_ids) | "max_symbols"
    seconds: float


@torch.no_grad()
def think(core, context: list[int], max_symbols: int, *, temperature: float = 0.8,
          top_k: int | None = 50, top_p: float | None = None,
          generator: torch.Generator | None = None, use_cache: bool = True,
          stop_ids: tuple[int, ...] = (EOS,), vocab_limit: int | None = None,
          never: tuple[int, ...] = NEVER_DRAWN,
          on_symbol: Callable[[int], None] | None = None,
          close_with: int | None = None) -> Thought:
    """Continue ``context`` (>= 1 symbol) by up to ``max_symbols`` symbols.

    The caller makes room: len(context) + max_symbols (+ 1 with ``close_with``) <=
    core.cfg.max_seq_len (the last symbol is fed once more so its hidden state exists).
    ``vocab_limit``: only ids below it may be drawn (the lexicon's size: a core's vocabulary may
    be larger than its lexicon); ``never``: ids that are never drawn either (EOS stays drawable:
    it is how a thought ends). ``close_with``: a symbol fed after the thought, whatever stopped
    it, whose state ends ``states`` (not ``ids``): the bridge closes a thought with EOS, as
    alignment reads every record."""
    t0 = time.perf_counter()
    device = core.tok_embeddings.weight.device
    ids = torch.tensor([context], dtype=torch.int64, device=device)
    total = len(context) + max_symbols + (close_with is not None)
    if total > core.cfg.max_seq_len:
        raise ValueError(f"context {len(context)} + {max_symbols} symbols"
                         f"{' + the closing one' if close_with is not None else ''} exceed the "
                         f"core's context ({core.cfg.max_seq_len})")
    cache = core.new_cache(1, total) if use_cache else None

    def run(new_ids: torch.Tensor):
        # Only the last position's logits are needed: the output head over a whole context
        # would cost about as much as the mini core's six blocks together.
        out = core(new_ids, cache=cache, compute_logits=False)
        return out.hidden, core.head(out.hidden[0, -1])

    hidden, logits = run(ids)
    states = [hidden]

    def feed(symbol: int) -> torch.Tensor:
        """Feed one symbol, keep every position's state; the next symbol's logits."""
        nonlocal ids, states
        step = torch.tensor([[symbol]], dtype=torch.int64, device=device)
        if use_cache:  # one new position against the cached keys/values
            hidden, logits = run(step)
            states.append(hidden)
        else:  # the whole sequence again
            ids = torch.cat((ids, step), dim=1)
            hidden, logits = run(ids)
            states = [hidden]
        return logits

    banned = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    if vocab_limit is not None:
        banned[vocab_limit:] = True
    banned[[i for i in never if i < len(banned)]] = True
    thought: list[int] = []
    stopped = "max_symbols"
    for _ in range(max_symbols):
        logits = logits.masked_fill(banned, float("-inf"))
        nxt = pick(logits, temperature, top_k, top_p, generator)
        if nxt in stop_ids:
            stopped = "eos" if nxt == EOS else "boundary"
            break
        thought.append(nxt)
        if on_symbol is not None:
            on_symbol(nxt)
        logits = feed(nxt)
    if close_with is not None:
        feed(close_with)
    return Thought(thought, torch.cat(states, dim=1), stopped, time.perf_counter() - t0)


@torch.no_grad()
def next_symbol_logprobs(core, context: list[int], vocab_limit: int | None = None
                         ) -> torch.Tensor:
    """[V] log P(next symbol | ``context``) as the core thinks it (the first ``vocab_limit``
    ids, renormalised: the lexicon's)."""
    device = core.tok_embeddings.weight.device
    hidden = core(torch.tensor([context], device=device), compute_logits=False).hidden
    return core.head(hidden[0, -1]).float()[:vocab_limit].log_softmax(-1).cpu()


def reading_kl(core, contexts: list[list[int]], vocab_limit: int | None = None) -> float:
    """Whether the core reads its contexts: the mean KL divergence (nats) between its next-symbol
    distributions after every ordered pair of them. 0 when it does not (every context gets one
    distribution, and a thought is a draw from the core's symbol frequencies); the demo's 300-step
    core gave six English questions 0.0000, a 1200-step one 0.196 (RESULTS.md, question_reading).
    Compare contexts of one language: a core tells languages apart long before it reads."""
    if len(contexts) < 2:
        raise ValueError("reading_kl compares two contexts or more")
    logp = [next_symbol_logprobs(core, c, vocab_limit) for c in contexts]
    pairs = [(a, b) for i, a in enumerate(logp) for j, b in enumerate(logp) if i != j]
    return sum(float((a.exp() * (a - b)).sum()) for a, b in pairs) / len(pairs)
