"""Choosing the next symbol or token from logits; shared by the core's and the decoder's loops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Generation:
    ids: torch.Tensor  # [B, prompt + new]: the prompt, then the new ids (eos repeated once done)
    logits: torch.Tensor | None  # [B, new, V]: the distribution each new id was drawn from


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [B,V] -> ids [B]. temperature <= 0 is greedy; top_k keeps the k likeliest."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]


# step(new_ids [B,n], ids [B,L]) -> logits [B,V] of the next id: runs the model on the n new ids
# (the last n of ids, everything so far), advancing its KV cache.
StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def decode(prompt_ids: torch.Tensor, max_new: int, step: StepFn, *, temperature: float = 1.0,
           top_k: int | None = None, eos_id: int | None = None,
           generator: torch.Generator | None = None, return_logits: bool = False) -> Generation:
    """The sampling loop of the core's and the decoder's ``generate`` (one copy, so eos and
    early-stop rules are the same in both): feed the prompt, then each sampled id, through
    ``step``. A row that produced ``eos_id`` keeps producing it; the loop stops once every row
    has, or after ``max_new`` ids."""
    B = prompt_ids.shape[0]
    ids, steps = prompt_ids, []
    done = torch.zeros(B, dtype=torch.bool, device=prompt_ids.device)
    logits = step(prompt_ids, ids)
    for i in range(max_new):
        steps.append(logits)
        token = sample_next(logits, temperature, top_k, generator)
        if eos_id is not None:
            token = torch.where(done, torch.full_like(token, eos_id), token)
            done |= token == eos_id
        ids = torch.cat((ids, token[:, None]), dim=1)
        if i == max_new - 1 or (eos_id is not None and bool(done.all())):
            break
        logits = step(token[:, None], ids)
    return Generation(ids, torch.stack(steps, dim=1) if return_logits else None)
