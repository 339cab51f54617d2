"""The boundary head (issue 13): each position decides which unit its token belongs to, codes
that decision, then says the token given the unit; generation follows its own decisions, so a
semantic rendering cannot stall on a unit whose lemma it never says."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tests.test_decoder_reading import CORE_VOCAB, S, core, decoder_cfg  # noqa: F401

from dualmind.model.boundary import LENGTH_GAIN, advance_targets
from dualmind.model.config import ConfigError
from dualmind.model.core_reading import read_core
from dualmind.model.decoder import LanguageDecoder
from dualmind.model.decoder_session import RECORD_END, DecoderSession
from dualmind.model.masks import SceneSpans, pack_alignment
from dualmind.model.sampling import decode
from dualmind.train.align import decoder_nll

pytestmark = pytest.mark.usefixtures("one_thread")


def boundary_decoder(**kw) -> LanguageDecoder:
    torch.manual_seed(5)
    cfg = dict(mask_mode="pointer", cross_rope=True, core_read="final", copy_slots=2,
               pointer_window=[-1, 1], pointer_feed=True, copy_logits=True,
               boundary_head=True, max_advance=3)
    cfg.update(kw)
    decoder = LanguageDecoder(decoder_cfg(**cfg)).eval()
    for part in (decoder.feed, decoder.copy_logits, decoder.boundary):  # zero-started: wake up
        for p in part.parameters():
            torch.nn.init.normal_(p, std=0.3)
    with torch.no_grad():  # read through its gain: the same effective size as the rest
        decoder.boundary.start_bias.div_(LENGTH_GAIN)
    decoder.memory.set_surfaces(torch.randint(-1, 61, (CORE_VOCAB, cfg["copy_slots"])))
    return decoder


def scene(core, core_ids=None):  # noqa: F811
    core_ids = core_ids if core_ids is not None else torch.randint(4, CORE_VOCAB, (1, S))
    return core_ids, read_core(core, core_ids, "final")


class Constant(torch.nn.Module):
    """A stand-in for the chosen unit's bonus: the same value for every slot."""

    def __init__(self, value: float, slots: int):
        super().__init__()
        self.value, self.slots = value, slots

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.new_full((*hidden.shape[:-1], self.slots), self.value)


def test_advances_are_the_span_minus_the_pointer_clipped():
    span = torch.tensor([[-1, 0, 0, 1, 5, 5]])
    pointer = torch.tensor([[-1, -1, 0, 0, 1, 5]])
    advance, clipped = advance_targets(span, pointer, 3)
    assert advance.tolist() == [[0, 1, 0, 1, 3, 0]] and clipped == 1


@pytest.mark.parametrize("unit_lengths", [False, True])
def test_the_code_length_charges_each_advance_and_the_token_given_it(core,  # noqa: F811
                                                                     unit_lengths):
    decoder = boundary_decoder(unit_lengths=unit_lengths)
    core_ids = torch.randint(4, CORE_VOCAB, (1, S))
    states = read_core(core, core_ids, "final")
    spans = [0, 0, 1, 2, 2, 4, 5, 5]  # the unit of the token each position predicts
    text = torch.randint(3, 61, (1, len(spans)))
    targets = torch.cat((text[:, 1:], torch.tensor([[2]])), dim=1)
    align = pack_alignment([[SceneSpans(S, spans, doc=0)]])
    batch = {"alignment": align, "core_ids": core_ids, "text_ids": text, "targets": targets}
    advance = torch.tensor([1, 0, 1, 1, 0, 2, 1, 0])  # span minus the previous position's span
    with torch.no_grad():
        code = decoder_nll(decoder, states, batch)
        logits, hidden = decoder(text, states, align, core_ids=core_ids, return_hidden=True)
        from dualmind.model.boundary import tokens_said_at_pointer

        said = tokens_said_at_pointer(align.text_span, align.text_scene, align.text_doc)
        assert said[0].tolist() == [0, 1, 2, 1, 1, 2, 1, 1]
        pointer = align.pointers()[0]
        unit = core_ids[0, pointer.clamp(min=0)]  # one scene: a unit's row is its index
        scores = decoder.advance_logits(hidden[0], pointer, said[0], unit)
        by_hand = F.cross_entropy(scores, advance, reduction="sum")
        tokens = F.cross_entropy(logits[0], targets[0], reduction="sum")
        # the token logits depend on the advance they are given
        other = decoder(text, states, align, core_ids=core_ids, pointer=align.pointers(),
                        advance=torch.zeros_like(text))
    torch.testing.assert_close(code.pointer_nll, by_hand)
    torch.testing.assert_close(code.nll, tokens + by_hand)
    assert int(code.targets) == len(spans) and float(code.pointer_nll) > 0
    assert not torch.allclose(other, logits)


@pytest.mark.parametrize("unit_lengths", [False, True])
def test_generation_reads_what_teacher_forcing_over_its_own_decisions_reads(
        core, unit_lengths):  # noqa: F811
    """No pointer_fn: the decoder decides each token's unit, and the logits at every step equal
    one forward over the generated text with the units it decided as spans."""
    decoder = boundary_decoder(unit_lengths=unit_lengths)
    core_ids, states = scene(core)
    session = DecoderSession(decoder, states, 1, 12, core_ids=core_ids,
                             generator=torch.Generator().manual_seed(0))
    decided, head = [], decoder.advance_logits

    def spy(*args):  # the advance distributions generation drew from
        decided.append(head(*args)[0, -1])
        return decided[-1][None, None]

    decoder.advance_logits = spy
    with torch.no_grad():
        gen = decode(torch.tensor([[1]]), 10, session.step, temperature=0.0, return_logits=True)
        del decoder.advance_logits
        spans = [int(u[0]) for u in session.chosen]
        assert len(spans) == gen.ids.shape[1] - 1 and max(spans) > 0, spans
        align = pack_alignment([[SceneSpans(S, spans, doc=0)]])
        full, hidden = decoder(gen.ids[:, :-1], states, align, core_ids=core_ids,
                               return_hidden=True)
        from dualmind.model.boundary import tokens_said_at_pointer

        said = tokens_said_at_pointer(align.text_span, align.text_scene, align.text_doc)
        pointer = align.pointers()[0]
        forced = decoder.advance_logits(hidden[0], pointer, said[0],
                                        core_ids[0, pointer.clamp(min=0)])
    torch.testing.assert_close(gen.logits[0], full[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(decided), forced, atol=1e-5, rtol=1e-5)
    assert [int(p[0]) for p in session.pointers] == [-1, *spans[:-1]]


def test_a_head_that_always_advances_says_each_unit_in_turn(core):  # noqa: F811
    """The chosen unit's surface is what the decoder says when its bonus dominates: the
    rendering walks the units one token each, then stays on the last."""
    decoder = boundary_decoder()
    surfaces = torch.full((CORE_VOCAB, 2), -1)
    surfaces[:, 0] = torch.arange(CORE_VOCAB) + 10  # unit u's surface starts with token u + 10
    decoder.memory.set_surfaces(surfaces)
    with torch.no_grad():
        decoder.boundary.out.weight.zero_()
        decoder.boundary.by_said.weight.zero_()
        decoder.boundary.out.bias.copy_(torch.tensor([0.0, 9.0, 0.0, 0.0]))
        decoder.boundary.start_bias.zero_()
        decoder.output.weight.zero_()  # (tied: the embeddings too; the head does not read them)
        decoder.copy_logits.bonus.weight.zero_()
    decoder.boundary.chosen_bonus = Constant(9.0, 2)
    core_ids = torch.tensor([[5, 6, 7, 8, 9, 11]])
    _, states = scene(core, core_ids)
    session = DecoderSession(decoder, states, 1, 12, core_ids=core_ids, advance="argmax")
    with torch.no_grad():
        gen = decode(torch.tensor([[1]]), 8, session.step, temperature=0.0)
    assert [int(u[0]) for u in session.chosen] == [0, 1, 2, 3, 4, 5, 5, 5]
    assert [int(t) for t in gen.ids[0, 1:]] == [15, 16, 17, 18, 19, 21, 21, 21]


def test_a_pointer_before_the_scene_has_its_own_bias(core):  # noqa: F811
    """A head that prefers to stay still leaves -1 when its start bias says so, then stays."""
    decoder = boundary_decoder()
    with torch.no_grad():
        decoder.boundary.out.weight.zero_()
        decoder.boundary.by_said.weight.zero_()
        decoder.boundary.out.bias.copy_(torch.tensor([9.0, 1.0, 0.0, 0.0]))
        decoder.boundary.start_bias.copy_(torch.tensor([0.0, 9.0, 0.0, 0.0]) / LENGTH_GAIN)
    core_ids, states = scene(core)
    session = DecoderSession(decoder, states, 1, 12, core_ids=core_ids, advance="argmax")
    session.step(torch.randint(3, 61, (1, 5)))
    assert [int(p) for p in session.pointers] == [-1, 0, 0, 0, 0]


def test_the_start_bias_learns_to_enter_the_scene_within_a_short_alignment():
    """Every scene's first token enters its first unit; every other token here stays. With
    nothing else to tell the two apart (hidden states of zero), the start bias must learn it in
    100 Adam steps at the align recipe's learning rate: read with its gain the head enters with
    P 0.90; read without it the bias moves by at most 0.2 and P(enter) stays near 0.23 (renders
    then repeat their first word)."""
    from dualmind.model.boundary import BoundaryHead

    head = BoundaryHead(decoder_cfg(mask_mode="pointer", boundary_head=True))
    head.reset_parameters(0.02)
    optimizer = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=0.0)
    at_start = torch.arange(64) % 8 == 0  # one scene start in eight positions
    said = torch.where(at_start, 0, 1 + torch.arange(64) % 3)
    target = at_start.long()  # enter at the start, stay elsewhere
    hidden = torch.zeros(64, head.hidden.in_features)
    for _ in range(100):
        loss = F.cross_entropy(head(hidden, at_start, said), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        p_enter = head(hidden, at_start, said).softmax(-1)[at_start, 1]
    assert float(p_enter.min()) > 0.75


def test_a_checkpoint_from_before_the_start_gain_loads_unchanged():
    """Checkpoints that stored the start bias unscaled (``at_start``) load into the gained
    parameter and give the same advance logits they gave."""
    from dualmind.model.boundary import BoundaryHead

    head = BoundaryHead(decoder_cfg(mask_mode="pointer", boundary_head=True))
    head.reset_parameters(0.02)
    old = {k: v.clone() for k, v in head.state_dict().items() if k != "start_bias"}
    old["at_start"] = torch.linspace(-0.3, 0.7, head.start_bias.numel())
    head.load_state_dict(old)
    hidden = torch.randn(3, head.hidden.in_features)
    at_start, said = torch.tensor([True, False, True]), torch.tensor([0, 2, 0])
    with torch.no_grad():
        logits = head(hidden, at_start, said)
        head.start_bias.zero_()
        plain = head(hidden, at_start, said)
    torch.testing.assert_close(logits - plain, at_start[:, None] * old["at_start"])


def test_boundary_head_needs_a_pointing_decoder_and_is_counted():
    with pytest.raises(ConfigError, match="boundary_head moves a pointer"):
        decoder_cfg(boundary_head=True)
    with pytest.raises(ConfigError, match="max_advance"):
        decoder_cfg(mask_mode="pointer", boundary_head=True, max_advance=0)
    for slots in (0, 2):
        cfg = decoder_cfg(mask_mode="pointer", boundary_head=True, copy_slots=slots,
                          copy_logits=bool(slots))
        assert cfg.num_params() == sum(p.numel() for p in LanguageDecoder(cfg).parameters())
        plain = decoder_cfg(mask_mode="pointer", copy_slots=slots, copy_logits=bool(slots))
        extra = cfg.flops_per_token(32, 8) - plain.flops_per_token(32, 8)
        assert math.isclose(extra, 6 * cfg.boundary_matmul_params())


def test_sampled_advances_are_seeded_and_move_where_argmax_stays(core):  # noqa: F811
    """A head whose likeliest advance is "stay" never leaves its unit under argmax; drawn from
    its distribution (the default) it moves on, the same way for the same seed."""
    decoder = boundary_decoder()
    with torch.no_grad():
        decoder.boundary.out.weight.zero_()
        decoder.boundary.by_said.weight.zero_()
        decoder.boundary.start_bias.zero_()
        decoder.boundary.out.bias.copy_(torch.tensor([1.0, 0.0, -9.0, -9.0]))  # stay: 73%
    core_ids, states = scene(core)

    def units(how: str, seed: int) -> list[int]:
        session = DecoderSession(decoder, states, 1, 24, core_ids=core_ids, advance=how,
                                 generator=torch.Generator().manual_seed(seed))
        session.step(torch.randint(3, 61, (1, 20), generator=torch.Generator().manual_seed(1)))
        return [int(u[0]) for u in session.chosen]

    assert units("argmax", 0) == [-1] * 20
    assert units("sample", 0) == units("sample", 0) and max(units("sample", 0)) >= 2
    with pytest.raises(ValueError, match="advance must be one of"):
        DecoderSession(decoder, states, 1, 4, core_ids=core_ids, advance="greedy")


def test_tokens_before_in_unit_count_each_units_run():
    from dualmind.model.boundary import tokens_before_in_unit

    span = torch.tensor([[-1, 0, 0, 0, 1, 3, 3, 0, 0]])
    scene = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 1, 1]])
    doc = torch.zeros_like(span)
    assert tokens_before_in_unit(span, scene, doc).tolist() == [[0, 0, 1, 2, 0, 0, 1, 0, 1]]


def eager_to_end(core, core_ids=None, eos_logit: float = 20.0):  # noqa: F811
    """Tokens said by a decoder that moves on at every token and whose likeliest token is EOS
    from the start (or, with a low ``eos_logit``, never), reading a random scene (or
    ``core_ids``' units)."""
    decoder = boundary_decoder()
    with torch.no_grad():
        decoder.boundary.out.weight.zero_()
        decoder.boundary.by_said.weight.zero_()
        decoder.boundary.start_bias.zero_()
        decoder.boundary.out.bias.copy_(torch.tensor([0.0, 9.0, 0.0, 0.0]))  # always advance
        decoder.output.weight.zero_()
        decoder.copy_logits.bonus.weight.zero_()
    decoder.boundary.chosen_bonus = Constant(-30.0, 2)
    core_ids, states = scene(core, core_ids)
    bias = torch.zeros(61)
    bias[EOS] = eos_logit
    decoder.output.register_forward_hook(lambda m, i, out: out + bias)
    gen = decoder.generate(states, torch.tensor([[1]]), 10, temperature=0.0, eos_id=EOS,
                           core_ids=core_ids, advance="argmax")
    return [int(t) for t in gen.ids[0, 1:]]


EOS = 2  # the toy tokenizer's, and the core's end of record (RECORD_END)


def test_a_rendering_ends_only_from_the_scenes_last_unit(core):  # noqa: F811
    """The EOS is refused until the pointer reaches the last unit (a record's EOS always sits
    there in training), then the decoder ends."""
    said = eager_to_end(core)
    assert said.index(EOS) == S - 1  # units 0..S-2 said something, EOS from the last one


def test_a_rendering_ends_when_its_head_moves_on_from_the_last_unit(core):  # noqa: F811
    """A decoder that never favours EOS still ends once every unit is said: its head moves on
    from the last unit (one token per unit here), and only EOS is left to say."""
    said = eager_to_end(core, eos_logit=-20.0)
    assert said.index(EOS) == S


def test_a_scene_closed_by_the_cores_eos_ends_at_the_unit_before_it(core):  # noqa: F811
    """Units closed by the core's EOS, as alignment reads a whole record: no text token belongs
    to that closing state, so the pointer stops at the unit before it and the text may end
    there (without the rule this rendering would say one token more, under the EOS state)."""
    core_ids = torch.randint(4, CORE_VOCAB, (1, S))
    core_ids[0, -1] = RECORD_END
    said = eager_to_end(core, core_ids)
    assert said.index(EOS) == S - 2


def test_remaining_buckets_count_a_units_unsaid_surface_tokens():
    from dualmind.model.boundary import remaining_bucket

    surfaces = torch.tensor([[-1, -1, -1], [7, -1, -1], [7, 8, -1], [7, 8, 9]])
    unit = torch.tensor([-1, 0, 1, 1, 2, 2, 2, 2, 3])
    said = torch.tensor([0, 0, 0, 1, 0, 1, 2, 3, 1])
    # unknown: no unit yet, a unit without surface, a surface filling every slot (may go on)
    assert remaining_bucket(surfaces, unit, said).tolist() == [0, 0, 3, 2, 4, 3, 2, 1, 0]


def test_unit_lengths_let_a_head_copy_each_surface_to_its_end(core):  # noqa: F811
    """With unit_lengths a head that moves on exactly when its unit's surface is out, and a
    bonus on the token at the slot reached, says every unit's surface in full, in order: the
    lossless rendering is a copy."""
    from dualmind.model.decoder_config import REMAINING

    decoder = boundary_decoder(unit_lengths=True, copy_slots=3)
    surfaces = torch.full((CORE_VOCAB, 3), -1)
    surfaces[:, 0] = torch.arange(CORE_VOCAB) + 10
    surfaces[::2, 1] = 60  # even units say two tokens: their word, then token 60
    decoder.memory.set_surfaces(surfaces)
    with torch.no_grad():
        head = decoder.boundary
        for part in (head.out.weight, head.out.bias, head.by_said.weight, head.start_bias):
            part.zero_()
        stay, move = torch.zeros(REMAINING, 4), torch.zeros(REMAINING, 4)
        stay[3:, 0], move[:3, 1] = 9.0, 9.0  # tokens left: stay; none (or unknown): move on
        head.by_remaining.weight.copy_((stay + move) / LENGTH_GAIN)
        head.at_within.fill_(9.0 / LENGTH_GAIN)
        decoder.output.weight.zero_()
        decoder.copy_logits.bonus.weight.zero_()
    decoder.boundary.chosen_bonus = Constant(0.0, 3)
    core_ids = torch.tensor([[5, 6, 8, 9, 11, 12]])
    _, states = scene(core, core_ids)
    session = DecoderSession(decoder, states, 1, 12, core_ids=core_ids, advance="argmax")
    with torch.no_grad():
        gen = decode(torch.tensor([[1]]), 8, session.step, temperature=0.0)
    assert [int(t) for t in gen.ids[0, 1:]] == [15, 16, 60, 18, 60, 19, 21, 22]
    assert [int(u[0]) for u in session.chosen] == [0, 1, 1, 2, 2, 3, 4, 5]
