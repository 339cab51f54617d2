"""Generation: the cached incremental path computes the same logits as a full forward, the cross
keys/values are computed once, and sampling, top-k and eos behave."""

from __future__ import annotations

import pytest
import torch

from dualmind.model.cross_attention import CrossAttention
from dualmind.model.decoder import LanguageDecoder
from dualmind.model.decoder_config import DecoderConfig

B, S, P, NEW = 2, 8, 3, 12


# Tiny models: one intra-op thread keeps these tests fast (the fixture is in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> LanguageDecoder:
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=61, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, ffn_dim=48,
                        core_dim=24, cross_every=2, gated=True, max_seq_len=64)
    decoder = LanguageDecoder(cfg).eval()
    with torch.no_grad():  # open the gates and give the null pair a value: every path counts
        for layer in decoder.cross_layers:
            layer.gate.fill_(0.7)
            layer.null_k.normal_()
            layer.null_v.normal_()
    return decoder


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(B, S, 24, generator=gen), torch.randint(0, 61, (B, P), generator=gen))


def stream_rows(positions: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Stream mode stand-in: the token at position p reads units 0 .. p // 2 (row 1 one unit
    behind row 0), as if the core read one unit per two text tokens."""
    reach = positions[None, :, None] // 2 - torch.arange(ids.shape[0])[:, None, None]
    return torch.arange(S)[None, None, :] <= reach


def _full_rows(cross_mask, cross_mask_fn, ids):
    L = ids.shape[1]
    if cross_mask_fn is not None:
        return cross_mask_fn(torch.arange(L), ids)
    if cross_mask is None:
        return None
    return cross_mask[:, None, :].expand(-1, L, -1) if cross_mask.dim() == 2 \
        else cross_mask[:, :L]


@pytest.mark.parametrize("how", ["everything", "render_row", "per_position", "stream_fn"])
def test_cached_logits_equal_the_full_forward(model, inputs, how):
    core, prompt = inputs
    gen = torch.Generator().manual_seed(2)
    cross_mask = cross_mask_fn = None
    if how == "render_row":
        cross_mask = torch.tensor([[True] * 5 + [False] * 3, [True] * 8])
    elif how == "per_position":
        cross_mask = torch.rand(B, P + NEW, S, generator=gen) > 0.5
    elif how == "stream_fn":
        cross_mask_fn = stream_rows
    out = model.generate(core, prompt, NEW, cross_mask=cross_mask, cross_mask_fn=cross_mask_fn,
                         temperature=0.0, return_logits=True)
    assert out.ids.shape == (B, P + NEW) and torch.equal(out.ids[:, :P], prompt)
    assert torch.equal(out.ids[:, P:], out.logits.argmax(-1))
    with torch.no_grad():
        full = model(out.ids, core, _full_rows(cross_mask, cross_mask_fn, out.ids))
    # the logits that chose token i (at position P + i) come from position P + i - 1
    torch.testing.assert_close(out.logits, full[:, P - 1:-1], atol=1e-5, rtol=1e-5)


def test_cross_keys_values_are_computed_once(model, inputs, monkeypatch):
    core, prompt = inputs
    calls = []
    original = CrossAttention.keys_values

    def counting(self, states, positions=None):
        calls.append(states.shape)
        return original(self, states, positions)

    monkeypatch.setattr(CrossAttention, "keys_values", counting)
    model.generate(core, prompt, NEW, temperature=0.0)
    assert len(calls) == model.cfg.n_cross


def test_sampling_top_k_and_eos(model, inputs):
    core, prompt = inputs
    greedy = model.generate(core, prompt, NEW, temperature=0.0).ids
    assert torch.equal(model.generate(core, prompt, NEW, temperature=1.3, top_k=1).ids, greedy)

    def sample(seed):
        return model.generate(core, prompt, NEW, temperature=1.0, top_k=10,
                              generator=torch.Generator().manual_seed(seed), return_logits=True)

    first, again = sample(5), sample(5)
    assert torch.equal(first.ids, again.ids)
    ranks = (first.logits > first.logits.gather(-1, first.ids[:, P:, None])).sum(-1)
    assert (ranks < 10).all()  # every sampled token was among the 10 likeliest

    eos = int(greedy[0, P + 1])  # row 0 emits it at its second new token
    stopped = model.generate(core, prompt, NEW, temperature=0.0, eos_id=eos).ids
    assert torch.equal(stopped[:, :P + 2], greedy[:, :P + 2])
    for row in stopped:
        new = row[P:]
        hits = (new == eos).nonzero()
        if len(hits):  # once a row said eos it keeps saying it
            assert (new[int(hits[0]):] == eos).all()
    if (stopped[:, P:] == eos).any(dim=1).all():
        assert stopped.shape[1] <= P + NEW


def test_generation_refuses_bad_requests(model, inputs):
    core, prompt = inputs
    with pytest.raises(ValueError, match="at least one token"):
        model.generate(core, prompt[:, :0], 4)
    with pytest.raises(ValueError, match="one of cross_mask, cross_mask_fn and pointer_fn"):
        model.generate(core, prompt, 4, cross_mask=torch.ones(B, S, dtype=torch.bool),
                       cross_mask_fn=stream_rows)
    with pytest.raises(ValueError, match="longer than the decoder's context"):
        model.generate(core, prompt, 64)


def test_cross_keys_values_extend_as_the_core_reads_on(model, inputs):
    """Stream mode: keys/values of states the core adds later are appended, equal to computing
    them all at once, and a forward with them equals one with all the states."""
    core, prompt = inputs
    grown = model.cross_keys_values(core[:, 5:], extend=model.cross_keys_values(core[:, :5]))
    # (exact in arithmetic; a tolerance only because BLAS may block a 3-row and an 8-row
    # product differently on other CPUs)
    for (k, v), (k_all, v_all) in zip(grown, model.cross_keys_values(core), strict=True):
        torch.testing.assert_close(k, k_all, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(v, v_all, atol=1e-6, rtol=1e-6)
    mask = stream_rows(torch.arange(P), prompt)
    with torch.no_grad():
        torch.testing.assert_close(model(prompt, cross_mask=mask, cross_kv=grown),
                                   model(prompt, core, mask), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="extend holds 1 layers, the decoder has 2"):
        model.cross_keys_values(core, extend=grown[:1])
