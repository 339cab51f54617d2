"""Cross-attention masks: their meaning on hand-made packs, their errors, and the proof that
neither mode leaks — perturbing core states a token must not see leaves its logits bit-identical,
perturbing ones it may see changes them, with several scenes and documents packed per row."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dualmind.model.decoder import LanguageDecoder
from dualmind.model.decoder_config import DecoderConfig
from dualmind.model.masks import (
    Alignment,
    AlignmentError,
    SceneSpans,
    cross_attention_mask,
    pack_alignment,
    units_in_scene,
)

# Tiny models: one intra-op thread keeps these tests fast (the fixture is in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


# One document of two scenes: scene 0 has 3 units and 5 text tokens (the first before any unit),
# scene 1 has 2 units and 3 tokens.
ONE_DOC = [SceneSpans(3, [-1, 0, 0, 1, 2], doc=7), SceneSpans(2, [0, 1, 1], doc=7)]


def test_render_sees_own_and_earlier_scenes():
    mask = pack_alignment([ONE_DOC]).cross_mask("render")[0].int()
    expected = torch.tensor([[1, 1, 1, 0, 0]] * 5 + [[1, 1, 1, 1, 1]] * 3)
    assert torch.equal(mask, expected)


def test_stream_sees_units_up_to_the_one_after_its_pointer():
    # pointers (the unit of each position's input token): scene 0 [-1, -1, 0, 0, 1],
    # scene 1 [-1, 0, 1]; stream reads units <= pointer + 1 of its scene
    assert pack_alignment([ONE_DOC]).pointers().tolist() == [[-1, -1, 0, 0, 1, -1, 0, 1]]
    mask = pack_alignment([ONE_DOC]).cross_mask("stream")[0].int()
    expected = torch.tensor([
        [1, 0, 0, 0, 0],  # nothing produced yet: the first unit
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],  # scene 1: all of scene 0, then its own units up to pointer + 1
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
    ])
    assert torch.equal(mask, expected)


def test_pointer_reads_a_window_around_its_pointer():
    mask = pack_alignment([ONE_DOC]).cross_mask("pointer", window=(0, 1))[0].int()
    expected = torch.tensor([
        [1, 0, 0, 0, 0],  # pointer -1: units -1..0 of its scene, so unit 0
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],  # scene 1 (row indices 3, 4): never an earlier scene
        [0, 0, 0, 1, 1],
        [0, 0, 0, 0, 1],
    ])
    assert torch.equal(mask, expected)


def test_cross_positions_are_row_indices_of_pointer_and_units():
    from dualmind.model.masks import cross_positions

    queries, keys = cross_positions(pack_alignment([ONE_DOC]))
    assert keys.tolist() == [[0, 1, 2, 3, 4]]
    # scene 0 starts at row index 0, scene 1 at 3: start + pointer
    assert queries.tolist() == [[-1, -1, 0, 0, 1, 2, 3, 4]]


def test_documents_and_padding_never_see_each_other():
    rows = [[SceneSpans(2, [0, 1], doc=0), SceneSpans(1, [0, 0], doc=1)],
            [SceneSpans(1, [0], doc=0)]]
    align = pack_alignment(rows).to("cpu")
    assert align.text_doc.tolist() == [[0, 0, 1, 1], [0, -1, -1, -1]]
    first = {"render": [1, 1, 0], "stream": [1, 0, 0]}
    for mode in ("render", "stream"):
        mask = align.cross_mask(mode).int()
        assert mask[0].tolist() == [first[mode], [1, 1, 0], [0, 0, 1], [0, 0, 1]]
        assert mask[1].tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_core_unit_override_for_a_scene_cut_by_the_pack_boundary():
    # The pack starts in the middle of scene 0: its first state is unit 2, not unit 0.
    text = dict(text_span=torch.tensor([[2, 3]]), text_scene=torch.tensor([[0, 0]]),
                text_doc=torch.tensor([[0, 0]]))
    core = dict(core_scene=torch.tensor([[0, 0]]), core_doc=torch.tensor([[0, 0]]))
    assert units_in_scene(core["core_scene"], core["core_doc"]).tolist() == [[0, 1]]
    derived = cross_attention_mask("stream", **text, **core)
    explicit = cross_attention_mask("stream", **text, **core, core_unit=torch.tensor([[2, 3]]))
    # pointers [-1, 2]: stream reads units <= pointer + 1
    assert derived.int().tolist() == [[[1, 0], [1, 1]]]
    assert explicit.int().tolist() == [[[0, 0], [1, 1]]]


def _ids(text_span, text_scene, text_doc, core_scene=((0,),), core_doc=((0,),)):
    t = lambda x: torch.tensor(x)  # noqa: E731
    return dict(text_span=t(text_span), text_scene=t(text_scene), text_doc=t(text_doc),
                core_scene=t(core_scene), core_doc=t(core_doc))


@pytest.mark.parametrize("ids, message", [
    (_ids([[1, 0]], [[0, 0]], [[0, 0]]), "token 1 of row 0 goes back"),
    (_ids([[0, 0]], [[1, 0]], [[0, 0]]), "goes back from (scene 1"),
    (_ids([[0, -2]], [[0, 0]], [[0, 0]]), "span id -2 at row 0, token 1"),
    (_ids([[0, 0, 0]], [[0, 0, 0]], [[3, 4, 3]]), "text row 0: a document id reappears"),
    (_ids([[0]], [[0]], [[0]], core_scene=[[0, 0, 0]], core_doc=[[1, 2, 1]]),
     "core row 0: a document id reappears"),
])
def test_alignments_that_would_leak_are_refused(ids, message):
    with pytest.raises(AlignmentError) as err:
        cross_attention_mask("stream", **ids)
    assert message in str(err.value)


def test_spans_going_back_across_documents_are_fine():
    ids = _ids([[3, 0]], [[0, 0]], [[0, 1]], core_scene=[[0, 0]], core_doc=[[0, 1]])
    assert cross_attention_mask("stream", **ids).shape == (1, 2, 2)


def test_bad_mode_shapes_and_spans_are_named():
    ids = _ids([[0]], [[0]], [[0]])
    with pytest.raises(ValueError, match="mode must be one of"):
        cross_attention_mask("sideways", **ids)
    with pytest.raises(ValueError, match=r"share one \[B,T\] shape"):
        cross_attention_mask("render", **{**ids, "text_doc": torch.zeros(1, 2, dtype=torch.long)})
    with pytest.raises(ValueError, match="text ids have 1 rows, core ids 2"):
        cross_attention_mask("render", **{**ids, "core_scene": torch.zeros(2, 1, dtype=torch.long),
                                          "core_doc": torch.zeros(2, 1, dtype=torch.long)})
    with pytest.raises(AlignmentError, match="scene 1 has 2 units but a text token with span 2"):
        pack_alignment([[SceneSpans(1, [0], 0), SceneSpans(2, [0, 2], 0)]])


# ---- the leak proof, through the whole decoder ----

def _packed_batch():
    """Two rows: row 0 packs three scenes of document 0 and two of document 1; row 1 packs one
    document of two scenes and padding."""
    rows = [
        [SceneSpans(3, [-1, 0, 1, 1, 2], 0), SceneSpans(2, [0, 0, 1], 0),
         SceneSpans(2, [-1, 0, 1, 1], 0), SceneSpans(3, [0, 1, 2], 1), SceneSpans(1, [0, 0], 1)],
        [SceneSpans(4, [0, 1, 1, 2, 3, 3], 5), SceneSpans(2, [-1, -1, 0, 1], 5)],
    ]
    return pack_alignment(rows)


def _leak_model(gated: bool = False) -> LanguageDecoder:
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=50, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, ffn_dim=48,
                        core_dim=16, cross_every=2, gated=gated, max_seq_len=64,
                        attn_backend="sdpa")
    model = LanguageDecoder(cfg).eval()
    with torch.no_grad():  # make every path matter: non-zero null pair (and gates, if any)
        for layer in model.cross_layers:
            layer.null_k.normal_()
            layer.null_v.normal_()
            if layer.gate is not None:
                layer.gate.fill_(0.5)
    return model


@pytest.mark.parametrize("mode", ["render", "stream"])
def test_no_mode_leaks_what_a_token_must_not_see(mode):
    align = _packed_batch()
    mask = align.cross_mask(mode)
    model = _leak_model(gated=mode == "stream")
    B, T = align.text_doc.shape
    S = align.core_doc.shape[1]
    gen = torch.Generator().manual_seed(1)
    text = torch.randint(0, 50, (B, T), generator=gen)
    core = torch.randn(B, S, 16, generator=gen)
    noise = torch.randn(B, S, 16, generator=gen) * 3

    def logits(states):
        with torch.no_grad():
            return model(text, states, mask, doc_ids=align.text_doc)

    base = logits(core)
    checked_allowed = 0
    for b in range(B):
        for t in range(T):
            hidden = ~mask[b, t]
            perturbed = core.clone()
            perturbed[b, hidden] += noise[b, hidden]
            assert torch.equal(logits(perturbed)[b, t], base[b, t]), (mode, b, t)
            if mask[b, t].any():
                perturbed = core.clone()
                perturbed[b, mask[b, t]] += noise[b, mask[b, t]]
                assert not torch.allclose(logits(perturbed)[b, t], base[b, t]), (mode, b, t)
                checked_allowed += 1
    assert checked_allowed > T  # both rows had tokens with visible states


def test_packing_equals_running_each_document_alone():
    align = _packed_batch()
    model = _leak_model()
    gen = torch.Generator().manual_seed(2)
    T, S = align.text_doc.shape[1], align.core_doc.shape[1]
    text = torch.randint(0, 50, (2, T), generator=gen)
    core = torch.randn(2, S, 16, generator=gen)
    with torch.no_grad():
        packed = model(text, core, align, doc_ids=align.text_doc, mask_mode="stream")
        # an Alignment brings its documents to self-attention by itself
        assert torch.equal(model(text, core, align, mask_mode="stream"), packed)
        t_sel, c_sel = align.text_doc[0] == 1, align.core_doc[0] == 1  # document 1 of row 0
        alone = Alignment(*(getattr(align, k)[:1, sel] for k, sel in (
            ("text_span", t_sel), ("text_scene", t_sel), ("text_doc", t_sel),
            ("core_scene", c_sel), ("core_doc", c_sel))))
        single = model(text[:1, t_sel], core[:1, c_sel], alone, mask_mode="stream")
    torch.testing.assert_close(packed[0, t_sel], single[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["render", "stream"])
def test_a_causal_core_and_the_mask_keep_later_units_out_end_to_end(mode):
    """With the real (causal, document-masked) core in front: changing the symbol of core
    position s leaves bit-identical logits for every token that may read no state at or after s
    (stream: tokens whose span is before that unit; render: tokens of earlier scenes) and changes
    those of tokens that read it."""
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    align = _packed_batch()
    mask = align.cross_mask(mode)
    torch.manual_seed(3)
    core = HyperCore(CoreConfig(vocab_size=40, dim=16, n_layers=2, n_heads=2, ffn_dim=32,
                                max_seq_len=64, attn_backend="sdpa")).eval()
    decoder = _leak_model()
    gen = torch.Generator().manual_seed(4)
    B, S = align.core_doc.shape
    symbols = torch.randint(0, 40, (B, S), generator=gen)
    text = torch.randint(0, 50, align.text_doc.shape, generator=gen)

    def logits(ids):
        with torch.no_grad():
            states = core(ids, doc_ids=align.core_doc).hidden
            return decoder(text, states, mask, doc_ids=align.text_doc)

    base = logits(symbols)
    for b in range(B):
        for s in range(S):
            if align.core_doc[b, s] < 0:
                continue  # padding
            changed = symbols.clone()
            changed[b, s] = (changed[b, s] + 1) % 40
            out = logits(changed)
            reads = mask[b, :, s:].any(dim=-1)  # tokens that read s or a state after it
            assert torch.equal(out[b, ~reads], base[b, ~reads]), (mode, b, s)
            readers = mask[b, :, s]
            assert readers.any()  # this packing gives every unit a reader
            assert not torch.allclose(out[b, readers], base[b, readers]), (mode, b, s)
            assert torch.equal(out[1 - b], base[1 - b])


# ---- property: the vectorised masks equal the definition, spelled out per (token, state) ----

@st.composite
def packs(draw):
    """One to three rows, each a few documents of a few scenes with monotone spans."""
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        row = []
        for doc in range(draw(st.integers(1, 3))):
            for _ in range(draw(st.integers(1, 3))):
                n_units = draw(st.integers(1, 5))
                spans = draw(st.lists(st.integers(-1, n_units - 1), min_size=0, max_size=6))
                row.append(SceneSpans(n_units, sorted(spans), doc))
        rows.append(row)
    return rows


def reference_mask(rows, mode, window=(-1, 2)):
    """Allowed (token, state) pairs straight from the definitions, one pair at a time. A
    token's pointer is the span of the token before it in its scene (-1 for the first)."""
    out = []
    for row in rows:
        tokens = [(i, s.doc, ([-1] + list(s.span))[j]) for i, s in enumerate(row)
                  for j in range(len(s.span))]
        states = [(i, s.doc, unit) for i, s in enumerate(row) for unit in range(s.n_units)]

        def allowed(t_scene, t_doc, pointer, c_scene, c_doc, unit):
            if t_doc != c_doc:
                return False
            if mode == "render":
                return c_scene <= t_scene
            if mode == "stream":
                return c_scene < t_scene or (c_scene == t_scene and unit <= pointer + 1)
            return c_scene == t_scene and window[0] <= unit - pointer <= window[1]

        out.append([[allowed(*token, *state) for state in states] for token in tokens])
    return out


@settings(max_examples=60, deadline=None)
@given(rows=packs(), mode=st.sampled_from(["render", "stream", "pointer"]))
def test_masks_match_their_definition(rows, mode):
    mask = pack_alignment(rows).cross_mask(mode)
    for b, (row, expected) in enumerate(zip(rows, reference_mask(rows, mode), strict=True)):
        n_tokens, n_states = len(expected), sum(s.n_units for s in row)
        assert mask[b, :n_tokens, :n_states].tolist() == expected
        assert not mask[b, n_tokens:].any() and not mask[b, :, n_states:].any()  # padding


# ---- the leak test: what a position reads never depends on the token it predicts ----

@settings(max_examples=80, deadline=None)
@given(rows=packs(), mode=st.sampled_from(["render", "stream", "pointer"]), data=st.data())
def test_no_mask_row_depends_on_the_token_it_predicts(rows, mode, data):
    """Change token t (its span: the unit it belongs to, within what keeps spans monotone):
    rows <= t, which predict tokens up to t, must stay exactly the same in every mode."""
    candidates = [(r, i) for r, row in enumerate(rows) for i, s in enumerate(row) if s.span]
    if not candidates:
        return
    r, i = data.draw(st.sampled_from(candidates))
    scene = rows[r][i]
    j = data.draw(st.integers(0, len(scene.span) - 1))
    low = scene.span[j - 1] if j else -1
    high = scene.span[j + 1] if j + 1 < len(scene.span) else scene.n_units - 1
    new = data.draw(st.integers(low, high))
    changed = [list(row) for row in rows]
    spans = list(scene.span)
    spans[j] = new
    changed[r][i] = SceneSpans(scene.n_units, spans, scene.doc)
    t = sum(len(s.span) for s in rows[r][:i]) + j  # the position predicting the changed token
    before = pack_alignment(rows).cross_mask(mode)[r, : t + 1]
    after = pack_alignment(changed).cross_mask(mode)[r, : t + 1]
    assert torch.equal(before, after)
    from dualmind.model.masks import cross_positions

    q_before = cross_positions(pack_alignment(rows))[0][r, : t + 1]
    assert torch.equal(q_before, cross_positions(pack_alignment(changed))[0][r, : t + 1])
