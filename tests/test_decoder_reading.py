"""What the decoder reads of the core (issue 13): the four reads, the copy channel, rotary
offsets from the pointer, and generation that follows a pointer computing exactly what a
teacher-forced forward over the same alignment computes."""

from __future__ import annotations

import pytest
import torch

from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.core_reading import centre, read_core
from dualmind.model.decoder import LanguageDecoder
from dualmind.model.decoder_config import DecoderConfig
from dualmind.model.masks import SceneSpans, pack_alignment

pytestmark = pytest.mark.usefixtures("one_thread")

CORE_VOCAB, S = 40, 6


def decoder_cfg(**kw) -> DecoderConfig:
    base = dict(vocab_size=61, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48,
                core_dim=24, cross_every=1, max_seq_len=64, core_layers=2,
                core_vocab_size=CORE_VOCAB)
    base.update(kw)
    return DecoderConfig(**base)


@pytest.fixture(scope="module")
def core() -> HyperCore:
    torch.manual_seed(0)
    return HyperCore(CoreConfig(vocab_size=CORE_VOCAB, dim=24, n_layers=2, n_heads=4,
                                ffn_dim=48, max_seq_len=64)).eval()


def test_reads_have_their_shapes_and_meanings(core):
    ids = torch.randint(4, CORE_VOCAB, (2, S))
    assert torch.equal(read_core(core, ids, "embed"), core.tok_embeddings(ids))
    assert torch.equal(read_core(core, ids, "final"), core(ids).hidden)
    mix = read_core(core, ids, "mix")
    assert mix.shape == (2, S, 3, 24)  # embeddings + each block's output
    centred = read_core(core, ids, "centred")
    torch.testing.assert_close(centred.mean(dim=1), torch.zeros(2, 24), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="core_read must be one of"):
        read_core(core, ids, "last")


def test_centre_removes_each_groups_own_mean():
    states = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3) ** 1.5
    groups = torch.tensor([[0, 0, 1, 1], [5, 5, 5, 7]])
    out = centre(states, groups)
    for b, members in ((0, [0, 1]), (0, [2, 3]), (1, [0, 1, 2]), (1, [3])):
        torch.testing.assert_close(out[b, members].mean(0), torch.zeros(3), atol=1e-4, rtol=0)
        torch.testing.assert_close(out[b, members] - states[b, members],
                                   -states[b, members].mean(0).expand(len(members), 3))


def test_closed_form_parameter_count_covers_mix_and_copy():
    for kw in ({}, {"core_read": "mix"}, {"copy_slots": 3}, {"core_read": "mix", "copy_slots": 2,
                                                            "cross_rope": True},
               {"copy_slots": 2, "pointer_feed": True, "mask_mode": "pointer"},
               {"copy_slots": 2, "copy_logits": True, "pointer_window": [0, 1]}):
        cfg = decoder_cfg(**kw)
        assert cfg.num_params() == sum(p.numel() for p in LanguageDecoder(cfg).parameters()), kw


def test_the_copy_channel_reads_the_surface_table():
    """A unit's surface tokens reach the logits through the copy channel, and only the rows of
    units in the hyperphrase matter."""
    torch.manual_seed(1)
    decoder = LanguageDecoder(decoder_cfg(copy_slots=2)).eval()
    table = torch.full((CORE_VOCAB, 2), -1, dtype=torch.int64)
    table[5] = torch.tensor([7, 9])
    table[6] = torch.tensor([11, -1])
    decoder.memory.set_surfaces(table)
    states = torch.randn(1, 2, 24)
    core_ids, text = torch.tensor([[5, 6]]), torch.tensor([[1, 7, 9, 11]])
    base = decoder(text, states, core_ids=core_ids)
    other = table.clone()
    other[5, 0] = 20
    decoder.memory.set_surfaces(other)
    assert not torch.allclose(decoder(text, states, core_ids=core_ids), base)
    unused = table.clone()
    unused[30] = torch.tensor([3, 4])  # unit 30 is not in this hyperphrase
    decoder.memory.set_surfaces(unused)
    assert torch.equal(decoder(text, states, core_ids=core_ids), base)
    with pytest.raises(ValueError, match="needs the core ids"):
        decoder(text, states)
    with pytest.raises(ValueError, match="surface table has shape"):
        decoder.memory.set_surfaces(table[:3])


def test_rotary_offsets_make_the_pointer_matter():
    """With cross_rope, the same window read from another pointer scores differently; without
    it, cross-attention cannot tell the units of a window apart by place."""
    torch.manual_seed(2)
    states = torch.randn(1, S, 24)
    text = torch.tensor([[1, 2, 3, 4]])
    align = pack_alignment([[SceneSpans(S, [0, 1, 2, 3], doc=0)]])
    shifted = pack_alignment([[SceneSpans(S, [1, 2, 3, 4], doc=0)]])
    for rope in (True, False):
        decoder = LanguageDecoder(decoder_cfg(mask_mode="render", cross_rope=rope)).eval()
        a, b = decoder(text, states, align), decoder(text, states, shifted)
        assert torch.equal(a[:, :1], b[:, :1])  # position 0 points at -1 in both
        assert (not torch.allclose(a[:, 1:], b[:, 1:])) == rope


@pytest.mark.parametrize("mode, rope, read, feed", [("pointer", True, "final", False),
                                                    ("stream", False, "mix", False),
                                                    ("pointer", True, "embed", True),
                                                    ("render", False, "final", True),
                                                    ("pointer", True, "mix", "copy")])
def test_generation_following_a_pointer_equals_the_teacher_forced_forward(core, mode, rope,
                                                                          read, feed):
    """The generator's logits at every step equal one forward over the generated text with the
    alignment whose pointers the pointer_fn produced: generation reads what training read."""
    torch.manual_seed(3)
    decoder = LanguageDecoder(decoder_cfg(mask_mode=mode, cross_rope=rope, core_read=read,
                                          copy_slots=2, pointer_window=[-1, 1],
                                          pointer_feed=bool(feed),
                                          copy_logits=feed == "copy")).eval()
    for part in (decoder.feed, decoder.copy_logits):  # they start at zero: give them weights
        if part is not None:
            torch.nn.init.normal_(next(part.parameters()), std=0.05)
    decoder.memory.set_surfaces(torch.randint(-1, 61, (CORE_VOCAB, 2)))
    core_ids = torch.randint(4, CORE_VOCAB, (1, S))
    states = read_core(core, core_ids, read)

    def pointer_fn(positions, ids):  # a stand-in for the lexicon: one unit per two tokens
        return torch.clamp((positions[None, :] - 1) // 2, max=S - 1).expand(ids.shape[0], -1)

    gen = decoder.generate(states, torch.tensor([[1]]), 9, pointer_fn=pointer_fn,
                           core_ids=core_ids, temperature=0.0, return_logits=True)
    ids = gen.ids
    n = ids.shape[1]
    pointers = pointer_fn(torch.arange(n), ids)[0].tolist()
    # the span of the token position i predicts is the pointer of position i + 1
    spans = pointers[1:] + [pointers[-1]]
    align = pack_alignment([[SceneSpans(S, spans, doc=0)]])
    assert align.pointers()[0].tolist() == pointers
    with torch.no_grad():
        full = decoder(ids, states, align, core_ids=core_ids)
    torch.testing.assert_close(gen.logits[0], full[0, :-1], atol=1e-5, rtol=1e-5)


def test_generation_without_a_pointer_is_refused_for_a_pointing_decoder():
    decoder = LanguageDecoder(decoder_cfg(mask_mode="pointer", cross_rope=True))
    with pytest.raises(ValueError, match="needs a pointer_fn"):
        decoder.generate(torch.randn(1, S, 24), torch.tensor([[1]]), 3)


def test_bad_reading_configs_are_refused():
    from dualmind.model.config import ConfigError

    with pytest.raises(ConfigError, match="core_read must be one of"):
        decoder_cfg(core_read="last")
    with pytest.raises(ConfigError, match="pointer_window"):
        decoder_cfg(pointer_window=[2, 1])
    with pytest.raises(ConfigError, match="mask_mode must be one of"):
        decoder_cfg(mask_mode="later")
    with pytest.raises(ValueError, match="core_layers"):
        LanguageDecoder(decoder_cfg(core_read="mix", core_layers=None))


def test_the_pointer_feed_carries_exactly_the_windows_units():
    """Each token's input gets the memory of units pointer+lo..pointer+hi of its scene: changing
    a unit outside every window changes nothing, one inside a token's window changes it."""
    torch.manual_seed(5)
    decoder = LanguageDecoder(decoder_cfg(mask_mode="pointer", pointer_window=[0, 1],
                                          pointer_feed=True, core_read="final")).eval()
    torch.nn.init.normal_(decoder.feed.proj.weight, std=0.05)
    for layer in decoder.cross_layers:  # only the feed reads the core here
        torch.nn.init.zeros_(layer.wo.weight)
    states = torch.randn(1, S, 24)
    text = torch.tensor([[1, 2, 3]])
    align = pack_alignment([[SceneSpans(S, [0, 1, 1], doc=0)]])  # pointers -1, 0, 1
    base = decoder(text, states, align)
    far = states.clone()
    far[0, 5] += 1.0  # unit 5: in no window
    assert torch.equal(decoder(text, far, align), base)
    near = states.clone()
    near[0, 2] += 1.0  # unit 2: in the window of the last position only (pointer 1: units 1, 2)
    out = decoder(text, near, align)
    assert torch.equal(out[:, :2], base[:, :2]) and not torch.allclose(out[:, 2], base[:, 2])


def test_copy_logits_raise_exactly_the_windows_surface_tokens():
    """The copy logits add to the surface tokens of units pointer+lo..pointer+hi only, by the
    amount the hidden state gives each (offset, slot)."""
    torch.manual_seed(6)
    decoder = LanguageDecoder(decoder_cfg(mask_mode="pointer", pointer_window=[0, 1],
                                          copy_slots=2, copy_logits=True)).eval()
    table = torch.full((CORE_VOCAB, 2), -1, dtype=torch.int64)
    table[10] = torch.tensor([7, 8])
    table[11] = torch.tensor([9, -1])
    table[12] = torch.tensor([13, 14])
    decoder.memory.set_surfaces(table)
    core_ids = torch.tensor([[10, 11, 12]])
    states = torch.randn(1, 3, 24)
    text = torch.tensor([[1, 2, 3]])
    align = pack_alignment([[SceneSpans(3, [0, 1, 1], doc=0)]])  # pointers -1, 0, 1
    base = decoder(text, states, align, core_ids=core_ids)
    torch.nn.init.constant_(decoder.copy_logits.bonus.weight, 0.1)
    out = decoder(text, states, align, core_ids=core_ids)
    raised = (out - base).abs() > 1e-6
    # pointer -1: units -1, 0 -> unit 0 only; pointer 0: units 0, 1; pointer 1: units 1, 2
    assert raised[0, 0].nonzero().flatten().tolist() == [7, 8]
    assert raised[0, 1].nonzero().flatten().tolist() == [7, 8, 9]
    assert raised[0, 2].nonzero().flatten().tolist() == [9, 13, 14]
