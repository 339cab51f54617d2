"""The language decoder: shapes and counts, FLOPs, config errors, cross-attention properties
(no positions, null key/value, zero-init gates, loading a pretrained LM), packing, gradients."""

from __future__ import annotations

import pytest
import torch

from dualmind.model.config import ConfigError, CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.cross_attention import with_null
from dualmind.model.decoder import LanguageDecoder
from dualmind.model.decoder_config import DecoderConfig, available_decoders

# Tiny models: one intra-op thread keeps these tests fast (the fixture is in conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> DecoderConfig:
    values = dict(vocab_size=61, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, ffn_dim=48,
                  core_dim=24, cross_every=2, max_seq_len=64, rope_theta=1000.0)
    values.update(overrides)
    return DecoderConfig(**values)


def batch(cfg: DecoderConfig, B=2, T=9, S=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randint(0, cfg.vocab_size, (B, T), generator=gen),
            torch.randn(B, S, cfg.core_dim, generator=gen))


# ---- shapes, counts, FLOPs ----

@pytest.mark.parametrize("overrides", [
    {}, {"gated": True}, {"tie_embeddings": True}, {"cross_every": 1}, {"cross_every": 3},
    {"cross_every": 5}, {"n_kv_heads": None, "head_dim": 16},
])
def test_closed_form_count_matches_the_live_model(overrides):
    cfg = tiny(**overrides)
    model = LanguageDecoder(cfg)
    assert model.num_params() == cfg.num_params()
    assert len(model.cross_layers) == cfg.n_cross == len(cfg.cross_layers)
    assert [i for i, b in enumerate(model.layers) if b.cross_attention is not None] \
        == cfg.cross_layers


def test_named_shapes_pair_with_their_cores():
    assert {"mini", "8b"} <= set(available_decoders())
    mini, big = DecoderConfig.from_name("mini"), DecoderConfig.from_name("8b")
    assert mini.core_dim == CoreConfig.from_name("mini").dim
    assert big.core_dim == CoreConfig.from_name("70b").dim
    # the 8b decoder's text stack is exactly the Llama-3-8B shape, so such an LM loads into it
    assert big.text_stack().num_params() == CoreConfig.from_name("8b").num_params()
    assert big.num_params() == 8_433_029_128  # the number conf/decoder/8b.yaml documents
    with torch.device("meta"):
        model = LanguageDecoder(big)
    assert sum(p.numel() for p in model.parameters()) == big.num_params()
    assert mini.num_params() < 10e6


def test_flops_per_token_counts_self_and_cross_attention():
    cfg = tiny()
    T, S = 40, 12
    stack = cfg.text_stack().flops_per_token(T)
    per_token = 2 * cfg.dim * cfg.q_dim + cfg.dim
    per_state = 2 * cfg.core_dim * cfg.kv_dim + cfg.core_dim
    cross = cfg.n_cross * (per_token + per_state * S / T)
    attention = cfg.n_cross * cfg.n_heads * cfg.head_dim * (S + 1)
    assert cfg.flops_per_token(T, S) == pytest.approx(stack + 6 * cross + 12 * attention)
    assert cfg.flops_per_token(T, S, training=False) == pytest.approx(
        cfg.text_stack().flops_per_token(T, training=False) + 2 * cross + 4 * attention)
    assert cfg.flops_per_token(T, 2 * S) > cfg.flops_per_token(T, S)
    with pytest.raises(ValueError, match="core_len"):
        cfg.flops_per_token(T, 0)


# ---- config errors ----

def test_config_errors_name_the_key_and_file(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="cross_every must be a positive integer"):
        tiny(cross_every=0)
    with pytest.raises(ConfigError, match=r"decoder config: n_heads \(4\) must be a multiple"):
        tiny(n_kv_heads=3)
    with pytest.raises(ConfigError, match="decoder config: rope_scaling type 'llama3' needs key"):
        tiny(rope_scaling={"type": "llama3", "factor": 8.0})
    assert tiny(rope_scaling=LLAMA3_SCALING).rope_scaling["high_freq_factor"] == 4.0
    (tmp_path / "decoder").mkdir()
    bad = tmp_path / "decoder" / "bad.yaml"
    bad.write_text("vocab_size: 10\ndim: 8\nn_layers: 1\nn_heads: 2\nffn_dim: 8\ncore_dim: 8\n"
                   "cross_evry: 2\n")
    monkeypatch.setenv("DUALMIND_CONF_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"unknown decoder config key\(s\) \['cross_evry'\]") \
            as err:
        DecoderConfig.from_name("bad")
    assert str(bad) in str(err.value)
    with pytest.raises(ConfigError, match="no decoder shape named 'huge'.*available: \\['bad'\\]"):
        DecoderConfig.from_name("huge")
    assert DecoderConfig.from_dict(tiny().to_dict()) == tiny()


def test_forward_errors_say_what_is_wrong():
    cfg = tiny()
    model = LanguageDecoder(cfg)
    ids, core = batch(cfg)
    with pytest.raises(ValueError, match="expected \\(2, S, 24\\).*another core"):
        model(ids, torch.randn(2, 7, 32))
    with pytest.raises(ValueError, match="needs core_states"):
        model(ids)
    with pytest.raises(TypeError, match="cross_mask must be a bool tensor"):
        model(ids, core, torch.ones(2, 9, 7))
    with pytest.raises(ValueError, match=r"cross_mask has shape \(2, 9, 6\)"):
        model(ids, core, torch.ones(2, 9, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="longer than the decoder's context"):
        model(torch.zeros(1, 65, dtype=torch.long), core[:1])
    with pytest.raises(ValueError, match=r"positions has shape \(9,\), expected \(2, 9\)"):
        model(ids, core, positions=torch.arange(9))
    with pytest.raises(ValueError, match="text token id 61 is outside the decoder's vocabulary"):
        model(ids + 61 - ids.max(), core)


# ---- cross-attention properties ----

def test_shapes_and_hidden_without_head():
    cfg = tiny()
    model = LanguageDecoder(cfg)
    ids, core = batch(cfg)
    assert model(ids, core).shape == (2, 9, cfg.vocab_size)
    hidden = model(ids, core, compute_logits=False)
    assert hidden.shape == (2, 9, cfg.dim)
    torch.testing.assert_close(model.output(hidden), model(ids, core))


def test_cross_attention_has_no_positions():
    """Permuting the core states (and the mask's columns alike) changes nothing: the mask alone
    carries the alignment."""
    cfg = tiny(cross_every=1)
    model = LanguageDecoder(cfg).eval()
    ids, core = batch(cfg, S=11)
    mask = torch.rand(2, 9, 11, generator=torch.Generator().manual_seed(3)) > 0.4
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(model(ids, core[:, perm], mask[:, :, perm]),
                                   model(ids, core, mask), atol=1e-5, rtol=1e-5)


def test_null_key_value_lets_a_token_see_nothing():
    cfg = tiny()
    model = LanguageDecoder(cfg).eval()
    ids, core = batch(cfg)
    blind = torch.zeros(2, 9, 7, dtype=torch.bool)
    with torch.no_grad():
        out = model(ids, core, blind)
        assert torch.isfinite(out).all()
        assert torch.equal(out, model(ids, torch.randn_like(core), blind))
        # null value starts at zero: seeing nothing adds exactly nothing to the residual stream
        x = model.tok_embeddings(ids)
        layer = model.cross_layers[0]
        sdpa_mask = with_null(blind, 2, 9, 7, x.device)
        assert sdpa_mask.shape == (2, 1, 9, 8) and sdpa_mask[..., 0].all()
        assert torch.equal(layer(x, layer.keys_values(core), sdpa_mask), torch.zeros_like(x))


LLAMA3_SCALING = {"type": "llama3", "factor": 8.0, "original_max_seq_len": 16}


@pytest.mark.parametrize("rope_scaling", [None, LLAMA3_SCALING])
def test_zero_init_gates_keep_a_pretrained_lm_intact(rope_scaling):
    """A gated decoder loaded with a plain LM's weights computes exactly that LM at the start,
    whatever the core says (RoPE scaling included); the gates (only) get gradient at once."""
    cfg = tiny(gated=True, cross_every=1, rope_scaling=rope_scaling)
    lm = HyperCore(cfg.text_stack()).eval()
    decoder = LanguageDecoder(cfg).eval()
    new = decoder.load_language_model(lm.state_dict())
    assert len(new) == cfg.n_cross * 9 and all(".cross_attention." in k for k in new)
    ids, core = batch(cfg)
    with torch.no_grad():
        expected = lm(ids).logits
    assert torch.equal(decoder(ids, core), expected)
    assert torch.equal(decoder(ids, core * 100 + 1), expected)

    decoder.train()
    decoder(ids, core).logsumexp(-1).mean().backward()
    for layer in decoder.cross_layers:
        assert layer.gate.grad.abs().item() > 0
        # tanh(0) = 0 blocks the projections' gradient until the gates open
        assert layer.wq.weight.grad.abs().max().item() == 0


def test_gradients_reach_the_decoder_and_never_the_core_states():
    cfg = tiny()
    model = LanguageDecoder(cfg)
    ids, core = batch(cfg)
    core.requires_grad_(False)
    logits = model(ids, core)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    for name, p in model.named_parameters():
        if "null_k" in name:
            continue  # a zero null key gets gradient only once scores differ from it
        assert p.grad is not None and p.grad.abs().max() > 0, name
    assert core.grad is None


def test_packed_documents_in_self_attention_match_separate_runs():
    cfg = tiny(attn_backend="sdpa")
    model = LanguageDecoder(cfg).eval()
    ids, core = batch(cfg, B=1, T=10, S=6)
    doc = torch.tensor([[0] * 4 + [1] * 6])
    mask = (doc[:, :, None] == torch.tensor([[0, 0, 0, 1, 1, 1]])[:, None, :])
    with torch.no_grad():
        packed = model(ids, core, mask, doc_ids=doc)
        first = model(ids[:, :4], core[:, :3])
        second = model(ids[:, 4:], core[:, 3:])
    torch.testing.assert_close(packed[:, :4], first, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[:, 4:], second, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("tie", [False, True])
def test_meta_construction_then_init(tie):
    cfg = tiny(gated=True, tie_embeddings=tie)
    with torch.device("meta"):
        model = LanguageDecoder(cfg)
        ids = torch.zeros(2, 5, dtype=torch.long)
        assert model(ids, torch.zeros(2, 3, cfg.core_dim)).shape == (2, 5, cfg.vocab_size)
    model.to_empty(device="cpu")
    model.init_weights()
    assert model.num_params() == cfg.num_params()
    assert (model.output.weight is model.tok_embeddings.weight) == tie
    ids, core = batch(cfg)
    assert torch.isfinite(model(ids, core)).all()
    assert all(layer.gate.item() == 0 for layer in model.cross_layers)


def test_bf16_decoder_reads_fp32_core_states():
    """A frozen fp32 core may feed a bf16 decoder (autocast, or bf16 weights as under FSDP2
    mixed precision): the cross keys/values follow the decoder's dtype."""
    cfg = tiny(cross_every=1)
    model = LanguageDecoder(cfg).eval()
    ids, core = batch(cfg)
    mask = torch.rand(2, 9, 7, generator=torch.Generator().manual_seed(5)) > 0.3
    with torch.no_grad():
        reference = model(ids, core, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(ids, core, mask)
        pure = model.to(torch.bfloat16)(ids, core, mask)
    for out in (mixed, pure):
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.05)


def test_a_language_model_that_does_not_fit_is_refused_by_name():
    cfg = tiny(gated=True)
    decoder = LanguageDecoder(cfg)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    wider = HyperCore(tiny(dim=48, n_heads=4).text_stack()).state_dict()
    with pytest.raises(ValueError, match=r"stack: layers.0.attention.wk.weight: shape "
                                         r"\(24, 48\), the decoder's is \(16, 32\);.*more\)"):
        decoder.load_language_model(wider)
    lm = HyperCore(cfg.text_stack()).state_dict()
    del lm["norm.weight"]
    lm["lm_head.bias"] = torch.zeros(3)
    with pytest.raises(ValueError, match="missing norm.weight; unexpected lm_head.bias"):
        decoder.load_language_model(lm)
    untied = HyperCore(cfg.text_stack()).state_dict()
    with pytest.raises(ValueError, match="the decoder ties them"):
        LanguageDecoder(tiny(tie_embeddings=True)).load_language_model(untied)
    assert all(torch.equal(v, before[k]) for k, v in decoder.state_dict().items())
