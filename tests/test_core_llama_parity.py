"""Same architecture, same weights => same numbers as transformers' Llama (no downloads)."""

from __future__ import annotations

import pytest
import torch

from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.llama_format import (
    core_config_from_hf,
    from_hf_state_dict,
    from_meta_state_dict,
    half_to_interleaved,
    interleaved_to_half,
    to_hf_state_dict,
)
from dualmind.model.rope import apply_rope, inverse_frequencies, rope_cos_sin

transformers = pytest.importorskip("transformers")

ROPES = {
    "default": None,
    "llama3": {"rope_type": "llama3", "rope_theta": 5000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    "linear": {"rope_type": "linear", "rope_theta": 5000.0, "factor": 4.0},
}


def _hf_llama(rope, tie, seed=0):
    kwargs = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  rms_norm_eps=1e-5, tie_word_embeddings=tie,
                  initializer_range=0.15)  # large weights: differences would show
    if rope is not None:
        kwargs["rope_parameters"] = dict(rope)
    config = transformers.LlamaConfig(**kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("rope", list(ROPES))
def test_logits_match_transformers_llama(rope, tie):
    hf = _hf_llama(ROPES[rope], tie)
    cfg = core_config_from_hf(hf.config)
    assert cfg.tie_embeddings == tie and (cfg.rope_scaling is None) == (rope == "default")
    core = HyperCore(cfg).eval()
    core.load_state_dict(from_hf_state_dict(hf.state_dict(), cfg))
    ids = torch.randint(0, 97, (2, 100), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids, output_hidden_states=True)
        got = core(ids, return_hidden_states=True)
    assert want.logits.abs().max() > 1.0  # a meaningful comparison, not two near-zero tensors
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.hidden, want.hidden_states[-1], atol=1e-5, rtol=1e-5)
    # transformers' list ends with the final-normed stream; ours keeps every raw block output
    for ours, theirs in zip(got.hidden_states[:-1], want.hidden_states[:-1], strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_rope_scaling_changes_the_numbers():
    """Guards the parity test: the scaled variants really differ from the default at T=100."""
    plain, scaled = _hf_llama(None, False), _hf_llama(ROPES["llama3"], False)
    ids = torch.randint(0, 97, (1, 100), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (plain(ids).logits - scaled(ids).logits).abs().max() > 1e-3


def test_export_to_transformers_round_trips():
    hf = _hf_llama(None, False)
    cfg = core_config_from_hf(hf.config)
    core_state = from_hf_state_dict(hf.state_dict(), cfg)
    back = to_hf_state_dict(core_state, cfg)
    assert back.keys() == hf.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in hf.state_dict().items())


def test_mismatched_state_dict_names_the_tensors():
    hf = _hf_llama(None, False)
    cfg = core_config_from_hf(hf.config, n_layers=3)
    with pytest.raises(KeyError, match=r"missing \['layers\.2\."):
        from_hf_state_dict(hf.state_dict(), cfg)


def test_meta_interleaved_rope_layout_is_permuted_on_load():
    """Meta's checkpoints rotate neighbouring pairs; after the permutation our half-split RoPE
    gives the same attention scores as Meta's interleaved RoPE on the original weights."""
    torch.manual_seed(0)
    H, Dh, D, T = 2, 8, 16, 5
    w_meta = torch.randn(H * Dh, D)
    x = torch.randn(1, T, D)
    pos = torch.arange(T)[None]
    inv = inverse_frequencies(Dh, 100.0, None)
    # Meta: complex rotation of (2i, 2i+1) pairs
    q = (x @ w_meta.T).view(1, T, H, Dh // 2, 2)
    angles = pos[..., None].float() * inv
    rotated = torch.view_as_real(torch.view_as_complex(q) * torch.polar(torch.ones_like(angles),
                                                                        angles)[:, :, None])
    q_meta = rotated.reshape(1, T, H, Dh)
    # ours: permuted weights, half-split rotation
    w_ours = interleaved_to_half(w_meta, H, Dh)
    cos, sin = rope_cos_sin(pos, inv)
    q_ours = apply_rope((x @ w_ours.T).view(1, T, H, Dh), cos, sin)
    scores = lambda q: torch.einsum("bqhd,bkhd->bhqk", q, q)  # noqa: E731
    torch.testing.assert_close(scores(q_ours), scores(q_meta), atol=1e-5, rtol=1e-5)
    assert torch.equal(half_to_interleaved(w_ours, H, Dh), w_meta)
    cfg = CoreConfig(vocab_size=10, dim=D, n_layers=1, n_heads=H, ffn_dim=8)
    converted = from_meta_state_dict({"layers.0.attention.wq.weight": w_meta, "rope.freqs": inv},
                                     cfg)
    assert list(converted) == ["layers.0.attention.wq.weight"]  # rope.freqs is recomputed
    assert torch.equal(converted["layers.0.attention.wq.weight"], w_ours)


def test_load_a_saved_llama_checkpoint_directory(tmp_path):
    """save_pretrained's safetensors directory loads without transformers and gives the same
    logits; a sharded save (with its index) loads the same way."""
    from dualmind.model.llama_format import load_hf_checkpoint

    hf = _hf_llama(ROPES["llama3"], tie=True)
    ids = torch.randint(0, 97, (1, 40), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = hf(ids).logits
    for sub, shard in (("whole", "10GB"), ("sharded", "40KB")):
        hf.save_pretrained(tmp_path / sub, max_shard_size=shard)
        core = load_hf_checkpoint(tmp_path / sub).eval()
        assert core.output.weight is core.tok_embeddings.weight
        with torch.no_grad():
            torch.testing.assert_close(core(ids).logits, want, atol=1e-5, rtol=1e-5)
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf_checkpoint(tmp_path)


def test_config_json_of_llama_3_1_maps_to_a_core_config():
    """The keys of a Llama-3.1-8B config.json (transformers 4.x layout: rope_scaling beside a
    top-level rope_theta) give the 8b shape plus its long-context RoPE."""
    config_json = {
        "architectures": ["LlamaForCausalLM"], "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 14336, "max_position_embeddings": 131072,
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": False,
        "vocab_size": 128256, "attention_bias": False, "mlp_bias": False,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    }
    cfg = core_config_from_hf(config_json)
    assert cfg.num_params() == CoreConfig.from_name("8b").num_params() == 8_030_261_248
    assert cfg.rope_theta == 500000.0 and cfg.max_seq_len == 131072
    assert cfg.rope_scaling == {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_seq_len": 8192}
    with pytest.raises(ValueError, match="rope type 'yarn'"):
        core_config_from_hf({**config_json, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
    with pytest.raises(ValueError, match="hidden_act 'gelu'"):
        core_config_from_hf({**config_json, "hidden_act": "gelu"})
