"""The decoder renders text from the core's states, streaming it as tokens are produced.

The cross-attention keys/values of the core's states are computed once; the decoder's own
self-attention uses a KV cache, so each token costs one position. Text is streamed through
``on_text`` in pieces: byte-level BPE tokens can end in the middle of a UTF-8 character, so a
piece is held back until it decodes cleanly (no U+FFFD at its end).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dualmind.bridge.sampling import pick

_WORD_DONE = re.compile(r"\w+[^\w]", re.UNICODE)
_WORD = re.compile(r"\w", re.UNICODE)


@dataclass
class Rendering:
    text: str
    token_ids: list[int]
    stopped: str  # "eos" | "max_tokens"
    seconds: float
    first_word_at: float | None  # perf_counter() when the first whole word was streamed


class TextStream:
    """Incremental detokenisation: feed ids, get the new text (held back until it is whole)."""

    def __init__(self, tokenizer, on_text: Callable[[str], None] | None):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.ids: list[int] = []
        self.text = ""
        self.first_word_at: float | None = None

    def push(self, token: int) -> None:
        self.ids.append(token)
        full = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if full.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for its next byte
            return
        self._emit(full)

    def close(self) -> None:
        full = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        self._emit(full)
        if self.first_word_at is None and _WORD.search(self.text):
            self.first_word_at = time.perf_counter()  # the answer ended right after its word

    def _emit(self, full: str) -> None:
        if not full.startswith(self.text):  # decoding is prefix-stable; if not, resend nothing
            self.text = full
            return
        piece = full[len(self.text):]
        if not piece:
            return
        self.text = full
        if self.on_text is not None:
            self.on_text(piece)
        if self.first_word_at is None and _WORD_DONE.search(self.text):
            self.first_word_at = time.perf_counter()


@torch.no_grad()
def render(decoder, tokenizer, states: torch.Tensor, bos: int, eos: int, max_tokens: int, *,
           temperature: float = 0.8, top_k: int | None = 50, top_p: float | None = None,
           generator: torch.Generator | None = None,
           on_text: Callable[[str], None] | None = None,
           core_ids: torch.Tensor | None = None, pointer=None) -> Rendering:
    """Render text reading ``states`` [1,S,...] (what ``decoder.cfg.core_read`` reads of the
    core; ``core_ids`` [1,S] their units, for the copy channel) as one scene: every state
    visible, or, for a decoder that points, the states around the unit its text has reached
    (its boundary head's, or ``pointer``'s: :class:`dualmind.model.pointer.LexiconPointer`)."""
    from dualmind.model.decoder_session import DecoderSession

    t0 = time.perf_counter()
    max_tokens = min(max_tokens, decoder.cfg.max_seq_len - 1)
    device = decoder.tok_embeddings.weight.device
    ids_on = core_ids.to(device) if core_ids is not None else None
    pointer_fn = None
    if pointer is not None:  # the unit of the token just read, from the text so far
        def pointer_fn(positions: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[pointer.unit_of_last(stream.ids)]], device=device)
    session = DecoderSession(decoder, states.to(device), 1, max_tokens + 1, core_ids=ids_on,
                             pointer_fn=pointer_fn, generator=generator, eos_id=eos)
    stream = TextStream(tokenizer, on_text)

    def step(token: int) -> torch.Tensor:
        new = torch.tensor([[token]], device=device)
        return session.step(new, new)[0]

    logits = step(bos)
    stopped = "max_tokens"
    for i in range(max_tokens):
        nxt = pick(logits, temperature, top_k, top_p, generator)
        if nxt == eos:
            stopped = "eos"
            break
        stream.push(nxt)
        if i == max_tokens - 1:
            break
        logits = step(nxt)
    stream.close()
    return Rendering(stream.text, stream.ids, stopped, time.perf_counter() - t0,
                     stream.first_word_at)
