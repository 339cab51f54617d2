"""The numbers behind the viz report's pictures, on tiny random models.

A picture is only worth looking at if its numbers are the model's: the logit lens at the last
layer must be the model's own distribution, recomputed attention must rebuild the module's real
(fused-kernel) output, and masked positions must receive exactly nothing.
"""

from __future__ import annotations

import pytest
import torch

from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.decoder import LanguageDecoder
from dualmind.model.decoder_config import DecoderConfig
from dualmind.model.masks import Alignment
from dualmind.viz import probes


def tiny_core(seed: int = 0) -> HyperCore:
    torch.manual_seed(seed)
    cfg = CoreConfig(vocab_size=50, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, ffn_dim=64,
                     max_seq_len=64, attn_backend="sdpa", init_std=0.2)
    return HyperCore(cfg).eval()


def tiny_decoder(core_dim: int = 32) -> LanguageDecoder:
    torch.manual_seed(1)
    cfg = DecoderConfig(vocab_size=40, dim=24, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48,
                        core_dim=core_dim, cross_every=1, max_seq_len=64, attn_backend="sdpa",
                        init_std=0.2)
    decoder = LanguageDecoder(cfg).eval()
    with torch.no_grad():  # null key/value start at zero; give them values so they matter
        for layer in decoder.cross_layers:
            layer.null_k.normal_(0, 1.0)
            layer.null_v.normal_(0, 1.0)
    return decoder


def packed_input():
    torch.manual_seed(2)
    ids = torch.randint(4, 50, (2, 12))
    doc_ids = torch.tensor([[0] * 5 + [1] * 7, [3] * 12])  # row 0 packs two documents
    return ids, doc_ids


def test_logit_lens_at_last_layer_is_the_models_output():
    core = tiny_core()
    ids, doc_ids = packed_input()
    trace = probes.trace_core(core, ids, doc_ids)
    last = core.cfg.n_layers - 1
    lens = probes.lens_distribution(core, trace.hidden_states[last + 1])
    own = trace.logits.float().softmax(-1)
    torch.testing.assert_close(lens, own, rtol=0, atol=1e-6)
    values, top = probes.logit_lens(core, trace.hidden_states, [0, last], [0, 4, 11], top=3)
    assert values.shape == top.shape == (2, 3, 3)
    want_values, want_ids = own[0, [0, 4, 11]].topk(3, dim=-1)
    assert torch.equal(top[1], want_ids)
    torch.testing.assert_close(values[1], want_values, rtol=0, atol=1e-6)
    # an earlier layer is a different (not yet final) distribution
    assert not torch.allclose(values[0], values[1])


def test_recomputed_attention_is_normalised_and_masked():
    core = tiny_core()
    ids, doc_ids = packed_input()
    trace = probes.trace_core(core, ids, doc_ids, layers=[0, 2], heads=[1, 3])
    assert set(trace.attention) == {0, 2}
    for cap in trace.attention.values():
        assert cap.probs.shape == (2, 2, 12, 12)
        torch.testing.assert_close(cap.probs.sum(-1), torch.ones(2, 2, 12), rtol=0, atol=1e-6)
        future = torch.ones(12, 12, dtype=torch.bool).triu(1)
        assert torch.all(cap.probs[:, :, future] == 0)
        # row 0: positions 5.. (document 1) never see 0..4 (document 0), and vice versa
        assert torch.all(cap.probs[0, :, 5:, :5] == 0)
        assert torch.all(cap.probs[0, :, 5, 5] == 1)  # a document's first symbol sees itself
        # row 1 is one document: the last position spreads over all 12
        assert torch.all(cap.probs[1, :, 11] > 0)


def test_recomputed_attention_rebuilds_the_real_sdpa_output():
    core = tiny_core()
    ids, doc_ids = packed_input()
    for docs in (doc_ids, None):
        trace = probes.trace_core(core, ids, docs, layers=[0, 1, 2], keep_values=True)
        for layer, cap in trace.attention.items():
            rebuilt = probes.rebuild_output(core.layers[layer].attention, cap)
            torch.testing.assert_close(rebuilt, cap.output, rtol=1e-4, atol=1e-5)


def test_recomputation_would_catch_a_wrong_mask():
    """The faithfulness check has teeth: probabilities without the document mask do not
    rebuild the packed forward's output."""
    core = tiny_core()
    ids, doc_ids = packed_input()
    trace = probes.trace_core(core, ids, doc_ids, layers=[1], keep_values=True)
    cap = trace.attention[1]
    k_free = probes.trace_core(core, ids, None, layers=[1], keep_values=True).attention[1]
    wrong = probes.AttentionCapture(k_free.probs, cap.heads, cap.allowed, values=cap.values)
    rebuilt = probes.rebuild_output(core.layers[1].attention, wrong)
    assert not torch.allclose(rebuilt, cap.output, atol=1e-4)


def two_document_alignment():
    # core: doc 0 has 4 units, doc 1 has 3; text: doc 0 has 5 tokens, doc 1 has 4
    core_doc = torch.tensor([[0] * 4 + [1] * 3])
    text_doc = torch.tensor([[0] * 5 + [1] * 4])
    zeros_t, zeros_c = torch.zeros_like(text_doc), torch.zeros_like(core_doc)
    return Alignment(text_span=zeros_t, text_scene=zeros_t, text_doc=text_doc,
                     core_scene=zeros_c, core_doc=core_doc)


def test_cross_attention_rows_include_null_and_respect_render_mask():
    core, decoder = tiny_core(), tiny_decoder()
    core_ids = torch.randint(4, 50, (1, 7))
    alignment = two_document_alignment()
    states = core(core_ids, doc_ids=alignment.core_doc).hidden
    text = torch.randint(0, 40, (1, 9))
    trace = probes.trace_decoder(decoder, text, states, alignment, keep_values=True)
    render = alignment.cross_mask("render")
    assert trace.layers == [0, 1]
    for index, cap in trace.cross.items():
        assert cap.probs.shape == (1, 4, 9, 8)  # 1 null + 7 core states
        torch.testing.assert_close(cap.probs.sum(-1), torch.ones(1, 4, 9), rtol=0, atol=1e-6)
        assert torch.all(cap.probs[..., 0] > 0)  # the null slot is always visible
        hidden = ~render[:, None]  # [1,1,9,7]
        assert torch.all(cap.probs[..., 1:][hidden.expand_as(cap.probs[..., 1:])] == 0)
        assert torch.all(cap.probs[0, :, :5, 5:] == 0) and torch.all(cap.probs[0, :, 5:, 1:5] == 0)
        rebuilt = probes.rebuild_output(decoder.cross_layers[index], cap)
        torch.testing.assert_close(rebuilt, cap.output, rtol=1e-4, atol=1e-5)


def test_activation_norms_and_drift():
    a, b = tiny_core(0), tiny_core(0)
    with torch.no_grad():
        b.layers[1].feed_forward.w2.weight.mul_(3.0)  # only layer 1 and later move
    ids, doc_ids = packed_input()
    ha = probes.trace_core(a, ids, doc_ids).hidden_states
    hb = probes.trace_core(b, ids, doc_ids).hidden_states
    norms = probes.activation_norms(ha)
    assert norms.shape == (4, 12)
    torch.testing.assert_close(norms[2], ha[2][0].norm(dim=-1))
    drift = probes.representation_drift(ha, hb)
    assert torch.all(drift["relative_l2"][:2] == 0) and torch.all(drift["relative_l2"][2:] > 0)
    torch.testing.assert_close(drift["cosine"][:2], torch.ones(2))
    assert torch.all(drift["cosine"][2:] < 1)


def test_unknown_layer_or_head_is_named():
    core = tiny_core()
    ids, _ = packed_input()
    with pytest.raises(ValueError, match="layer 7 does not exist"):
        probes.trace_core(core, ids, layers=[7])
    with pytest.raises(ValueError, match=r"head\(s\) \[9\]"):
        probes.trace_core(core, ids, layers=[0], heads=[9])
