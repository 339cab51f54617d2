"""The hyper-core: shapes and counts, packing, RoPE scaling, init, config errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dualmind.model import attention as attn
from dualmind.model.config import ConfigError, CoreConfig, available_shapes, conf_dir
from dualmind.model.core import HyperCore
from dualmind.model.rope import inverse_frequencies

SHAPES = ["mini", "125m", "1b", "8b", "70b", "200b"]
KNOWN_COUNTS = {  # published counts of the Llama shapes we mirror
    "1b": 1_235_814_400,  # Llama-3.2-1B
    "8b": 8_030_261_248,  # Llama-3-8B
    "70b": 70_553_706_496,  # Llama-3-70B
}


def tiny(**overrides) -> CoreConfig:
    values = dict(vocab_size=61, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48,
                  max_seq_len=64, rope_theta=1000.0)
    values.update(overrides)
    return CoreConfig(**values)


def test_every_named_shape_is_present():
    assert set(SHAPES) <= set(available_shapes())


@pytest.mark.parametrize("name", SHAPES)
def test_shape_on_meta_matches_closed_form(name):
    cfg = CoreConfig.from_name(name)
    with torch.device("meta"):
        model = HyperCore(cfg)
    counted = sum(p.numel() for p in model.parameters())
    assert counted == cfg.num_params() == model.num_params()
    if name in KNOWN_COUNTS:
        assert counted == KNOWN_COUNTS[name]
    assert len(model.layers) == cfg.n_layers


def test_200b_is_about_200b_and_mini_is_small():
    assert 195e9 < CoreConfig.from_name("200b").num_params() < 205e9
    assert CoreConfig.from_name("mini").num_params() < 20e6


@pytest.mark.parametrize("tie", [False, True])
def test_flops_per_token_is_torchtitans_formula(tie):
    cfg = tiny(tie_embeddings=tie)
    n = cfg.num_params() - (0 if tie else cfg.vocab_size * cfg.dim)  # the lookup does no FLOPs
    assert cfg.matmul_params() == n
    attention = cfg.n_layers * cfg.n_heads * cfg.head_dim * 50
    assert cfg.flops_per_token(50) == 6 * n + 12 * attention
    assert cfg.flops_per_token(50, training=False) == 2 * n + 4 * attention
    assert cfg.non_embedding_params() == cfg.n_layers * cfg.block_params() + cfg.dim


def test_flops_per_token_matches_torch_flop_counter():
    """PyTorch's FLOP counter on a real forward/backward agrees with the formula exactly, once the
    norm weights (which the 6·N convention counts but no matmul uses) are taken out."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    cfg = tiny()
    model = HyperCore(cfg)
    B, T = 2, 40
    ids = torch.randint(0, cfg.vocab_size, (B, T))
    norm_weights = (2 * cfg.n_layers + 1) * cfg.dim
    # the math kernel is built from counted matmuls; the fused CPU kernel is not counted at all
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as forward:
        model(ids)
    assert forward.get_total_flops() == cfg.flops_per_token(T, training=False) * B * T \
        - 2 * norm_weights * B * T
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as training:
        model(ids).logits.sum().backward()
    assert training.get_total_flops() == cfg.flops_per_token(T) * B * T - 6 * norm_weights * B * T


# ---- forward ----

def test_forward_shapes_hidden_states_and_logit_lens():
    torch.manual_seed(0)
    cfg = tiny()
    model = HyperCore(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 10))
    out = model(ids, return_hidden_states=True)
    assert out.logits.shape == (2, 10, cfg.vocab_size) and out.hidden.shape == (2, 10, cfg.dim)
    assert len(out.hidden_states) == cfg.n_layers + 1
    # hidden is the final-normed stream the head reads: norm(last state) -> logits
    torch.testing.assert_close(out.hidden, model.norm(out.hidden_states[-1]))
    torch.testing.assert_close(out.logits, model.output(out.hidden))
    assert model(ids, compute_logits=False).logits is None


def test_packed_documents_do_not_see_each_other():
    torch.manual_seed(0)
    cfg = tiny(n_layers=3)
    model = HyperCore(cfg).eval()
    a = torch.randint(0, cfg.vocab_size, (1, 9))
    b = torch.randint(0, cfg.vocab_size, (1, 13))
    doc_ids = torch.tensor([[0] * 9 + [1] * 13])
    with torch.no_grad():
        packed = model(torch.cat([a, b], 1), doc_ids=doc_ids).logits
        perturbed = model(torch.cat([(a + 7) % cfg.vocab_size, b], 1), doc_ids=doc_ids).logits
        alone = model(b).logits
    torch.testing.assert_close(perturbed[:, 9:], packed[:, 9:], atol=0, rtol=0)  # bit-identical
    assert (perturbed[:, :9] - packed[:, :9]).abs().max() > 1e-3  # the perturbation is real
    # positions restart per document: B packed after A computes what B alone computes
    torch.testing.assert_close(packed[:, 9:], alone, atol=1e-5, rtol=1e-5)
    # ...and without the document mask B would have read A
    unmasked = model(torch.cat([(a + 7) % cfg.vocab_size, b], 1)).logits
    assert (unmasked[:, 9:] - packed[:, 9:]).abs().max() > 1e-3


def test_no_gradient_crosses_a_document_boundary():
    torch.manual_seed(0)
    cfg = tiny()
    model = HyperCore(cfg)
    ids = torch.randint(0, cfg.vocab_size, (1, 12))
    doc_ids = torch.tensor([[0] * 5 + [1] * 7])
    embeddings = model.tok_embeddings(ids).detach().requires_grad_(True)
    model.tok_embeddings.forward = lambda _ids: embeddings  # feed the leaf we watch
    model(ids, doc_ids=doc_ids).logits[:, 5:].sum().backward()
    assert embeddings.grad[:, :5].abs().max() == 0  # doc 0 gets nothing from doc 1's loss
    assert embeddings.grad[:, 5:].abs().max() > 0


def test_sequence_longer_than_context_is_an_error():
    model = HyperCore(tiny(max_seq_len=8))
    with pytest.raises(ValueError, match="longer than the model's context"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="position 8 is beyond"):
        model(torch.zeros(1, 2, dtype=torch.long), positions=torch.tensor([[0, 8]]))


def test_bf16_autocast_forward_runs():
    model = HyperCore(tiny())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randint(0, 61, (2, 16)), doc_ids=torch.tensor([[0] * 8 + [1] * 8] * 2))
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits.float()).all()


# ---- RoPE scaling ----

def test_linear_rope_scaling_is_position_interpolation():
    torch.manual_seed(0)
    plain = HyperCore(tiny()).eval()
    scaled = HyperCore(tiny(rope_scaling={"type": "linear", "factor": 2.0})).eval()
    scaled.load_state_dict(plain.state_dict())
    ids = torch.randint(0, 61, (1, 6))
    with torch.no_grad():
        unscaled = plain(ids).logits  # positions 0..5
        stretched = scaled(ids, positions=torch.arange(0, 12, 2)[None]).logits  # 0,2,..,10 / 2
        direct = scaled(ids).logits
    torch.testing.assert_close(stretched, unscaled)
    assert (direct - unscaled).abs().max() > 1e-4  # the scaling does change the model


def test_ntk_and_llama3_scaling_keep_high_and_stretch_low_frequencies():
    base = inverse_frequencies(64, 10000.0, None)
    ntk = inverse_frequencies(64, 10000.0, {"type": "ntk", "factor": 8.0})
    llama3 = inverse_frequencies(64, 10000.0, {"type": "llama3", "factor": 8.0, "low_freq_factor":
                                               1.0, "high_freq_factor": 4.0,
                                               "original_max_seq_len": 512})
    assert ntk[0] == base[0] == llama3[0] == 1.0  # fastest rotation untouched
    assert math.isclose(ntk[-1] / base[-1], 1 / 8, rel_tol=0.01)  # slowest stretched ~factor
    assert math.isclose(llama3[-1] / base[-1], 1 / 8, rel_tol=1e-6)
    assert torch.all(llama3 <= base) and torch.all(ntk <= base)


# ---- init ----

def test_meta_build_then_materialise_and_init():
    cfg = tiny(n_layers=4)
    with torch.device("meta"):
        model = HyperCore(cfg)
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    model.init_weights()
    out = model(torch.randint(0, cfg.vocab_size, (1, 8)))
    assert torch.isfinite(out.logits).all()
    assert torch.equal(model.layers[0].attention_norm.weight, torch.ones(cfg.dim))
    # output projections are shrunk with depth; input projections keep init_std (truncated
    # at ±3σ: a truncated normal's std is 0.9866 σ)
    big = HyperCore(tiny(dim=256, ffn_dim=512, n_layers=8, init_std=0.02))
    wq = big.layers[0].attention.wq.weight
    assert wq.abs().max() <= 0.06 and wq.abs().max() > 0.05
    assert math.isclose(wq.std().item(), 0.02 * 0.9866, rel_tol=0.02)
    assert abs(wq.mean().item()) < 1e-3
    assert math.isclose(big.layers[0].attention.wq.weight.std().item(), 0.02, rel_tol=0.1)
    assert math.isclose(big.layers[0].attention.wo.weight.std().item(), 0.02 / 4, rel_tol=0.1)
    depth = HyperCore(tiny(dim=256, ffn_dim=512, n_layers=8, init_scheme="depth"))
    assert math.isclose(depth.layers[7].feed_forward.w2.weight.std().item(), 0.02 / 4,
                        rel_tol=0.1)
    assert math.isclose(depth.layers[0].feed_forward.w2.weight.std().item(), 0.02 / 2 ** 0.5,
                        rel_tol=0.1)


def test_tied_embeddings_share_one_matrix():
    model = HyperCore(tiny(tie_embeddings=True))
    assert model.output.weight is model.tok_embeddings.weight
    assert model.num_params() == tiny(tie_embeddings=True).num_params()


# ---- config ----

def _conf_with(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / "model").mkdir(exist_ok=True)
    path = tmp_path / "model" / f"{name}.yaml"
    path.write_text(text)
    return path


def test_unknown_shape_lists_available(monkeypatch):
    with pytest.raises(ConfigError, match=r"no model shape named 'huge'.*available: \[.*'mini'"):
        CoreConfig.from_name("huge")


def test_unknown_key_names_key_and_file(tmp_path, monkeypatch):
    mini = (conf_dir() / "model" / "mini.yaml").read_text()
    path = _conf_with(tmp_path, "typo", mini + "n_layer: 3\n")
    monkeypatch.setenv("DUALMIND_CONF_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"'n_layer'.*typo\.yaml"):
        CoreConfig.from_name("typo")
    assert str(path).endswith("typo.yaml")


def test_bad_values_name_the_key():
    with pytest.raises(ConfigError, match="n_kv_heads"):
        tiny(n_kv_heads=3)
    with pytest.raises(ConfigError, match="attn_backend"):
        tiny(attn_backend="fast")
    with pytest.raises(ConfigError, match="needs key 'original_max_seq_len'"):
        tiny(rope_scaling={"type": "llama3", "factor": 8.0})
    with pytest.raises(ConfigError, match="rope_scaling.type"):
        tiny(rope_scaling={"type": "yarn", "factor": 8.0})


def test_numbers_written_without_a_dot_in_yaml_still_load(tmp_path, monkeypatch):
    mini = (conf_dir() / "model" / "mini.yaml").read_text().replace("1.0e-5", "1e-5")
    _conf_with(tmp_path, "nodot", mini)
    monkeypatch.setenv("DUALMIND_CONF_DIR", str(tmp_path))
    assert CoreConfig.from_name("nodot").norm_eps == 1e-5
    with pytest.raises(ConfigError, match="norm_eps must be a number, got 'small'"):
        tiny(norm_eps="small")
    with pytest.raises(ConfigError, match="tie_embeddings must be true or false"):
        tiny(tie_embeddings="yes please")


def test_config_round_trips_through_dict():
    cfg = tiny(rope_scaling={"type": "linear", "factor": 2.0})
    assert CoreConfig.from_dict(cfg.to_dict()) == cfg


def test_forced_missing_backend_fails_at_construction():
    if attn.is_installed("flash"):
        pytest.skip("flash-attn is installed here; the CPU refusal is tested in test_attention")
    with pytest.raises(attn.BackendUnavailable, match=r"flash-attn.*pip install 'dualmind\[gpu\]'"):
        HyperCore(tiny(attn_backend="flash"))


# ---- incremental decoding and outside wrappers ----

def test_kv_cache_decode_matches_full_forward():
    torch.manual_seed(0)
    cfg = tiny(n_layers=3)
    model = HyperCore(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 12))
    with torch.no_grad():
        full = model(ids).logits
        cache = model.new_cache(batch=2, max_len=16)
        steps = [model(ids[:, :5], cache=cache).logits]  # a prompt of 5 (a masked multi-query step)
        steps += [model(ids[:, 5:8], cache=cache).logits]  # 3 more at once
        steps += [model(ids[:, t:t + 1], cache=cache).logits for t in range(8, 12)]  # one by one
    assert cache.length == 12
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="KV cache is full"):
        model(ids[:, :5], cache=cache)
    with pytest.raises(ValueError, match="one sequence per batch row"):
        model(ids[:, :2], doc_ids=torch.zeros(2, 2, dtype=torch.long), cache=model.new_cache(2))
    cache.truncate(5)  # rewind to the prompt and continue differently
    with torch.no_grad():
        again = model(ids[:, 5:8], cache=cache).logits
    torch.testing.assert_close(again, full[:, 5:8], atol=1e-5, rtol=1e-5)


def test_rope_angles_survive_fsdp_mixed_precision_argument_cast():
    """FSDP2 casts floating tensors in a block's arguments to bf16 (dataclass fields too); the
    per-forward context must pass through untouched so RoPE keeps float32 angles."""
    from torch.distributed.utils import _apply_to_tensors

    from dualmind.model.core import BatchContext

    cos, sin = torch.rand(1, 4, 1, 8), torch.rand(1, 4, 1, 8)
    ctx = BatchContext(attn.build_layout("sdpa", None, 1, 4, torch.device("cpu"), torch.float32),
                       cos, sin)
    cast = lambda t: t.to(torch.bfloat16) if t.is_floating_point() else t  # noqa: E731
    x, ctx_after = _apply_to_tensors(cast, (torch.rand(1, 4, 8), ctx))
    assert x.dtype == torch.bfloat16  # the cast is real...
    assert ctx_after is ctx and ctx.cos.dtype == torch.float32  # ...and skips the context


def test_symbol_outside_vocabulary_is_a_clear_error():
    model = HyperCore(tiny())
    with pytest.raises(ValueError, match=r"symbol id 61 is outside.*vocab_size=61"):
        model(torch.tensor([[1, 61]]))
    with pytest.raises(ValueError, match="symbol id -1"):
        model(torch.tensor([[-1, 3]]))


@pytest.mark.parametrize("chunk", [7, 64])
def test_chunked_cross_entropy_equals_the_full_loss(chunk):
    from dualmind.model.loss import chunked_cross_entropy

    torch.manual_seed(0)
    model = HyperCore(tiny())
    ids = torch.randint(0, 61, (2, 15))
    targets = ids.roll(-1, 1)
    targets[0, -3:] = -100  # ignored positions
    full = torch.nn.functional.cross_entropy(model(ids).logits.flatten(0, 1), targets.flatten())
    full_grads = torch.autograd.grad(full, list(model.parameters()))
    out = model(ids, compute_logits=False)
    assert out.logits is None
    chunked = chunked_cross_entropy(out.hidden, model.output.weight, targets, chunk=chunk)
    chunked_grads = torch.autograd.grad(chunked, list(model.parameters()))
    torch.testing.assert_close(chunked, full)
    for a, b in zip(chunked_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_meta_forward_gives_shapes_without_values():
    """Shape-only runs (dry runs, FLOP counting) must not trip over value checks."""
    with torch.device("meta"):
        model = HyperCore(tiny(tie_embeddings=True))
        ids = torch.zeros(2, 16, dtype=torch.long)
        out = model(ids, doc_ids=torch.zeros(2, 16, dtype=torch.long))
    assert out.logits.shape == (2, 16, 61) and out.logits.device.type == "meta"
    model.to_empty(device="cpu")  # a plain to_empty unties shared parameters (FSDP2 keeps them)
    model.init_weights()
    assert model.output.weight is model.tok_embeddings.weight  # init_weights restores the tie
    assert model.num_params() == tiny(tie_embeddings=True).num_params()


def test_activation_checkpointing_from_outside_gives_the_same_gradients():
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    torch.manual_seed(0)
    cfg = tiny()
    plain = HyperCore(cfg)
    wrapped = HyperCore(cfg)
    wrapped.load_state_dict(plain.state_dict())
    for i, block in enumerate(wrapped.layers):  # what strategy.activation_checkpointing=full does
        wrapped.layers[i] = checkpoint_wrapper(block)
    ids, doc_ids = torch.randint(0, 61, (2, 12)), torch.tensor([[0] * 5 + [1] * 7] * 2)
    for model in (plain, wrapped):
        model(ids, doc_ids=doc_ids).logits.square().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), wrapped.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=lambda m, n=name: f"{n}: {m}")


def test_rope_rotation_and_its_hand_written_gradient():
    from dualmind.model.rope import apply_rope, rope_cos_sin

    torch.manual_seed(0)
    positions = torch.tensor([[0, 3, 7, 100]])
    cos, sin = rope_cos_sin(positions, inverse_frequencies(8, 10000.0, None))
    x = torch.randn(1, 4, 2, 8, dtype=torch.float64, requires_grad=True)
    # dtype note: float32 tables with a float64 input promote to float64 inside
    assert torch.autograd.gradcheck(lambda t: apply_rope(t, cos, sin), (x,))
    rotated = apply_rope(x, cos, sin)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))  # a rotation keeps norms
    torch.testing.assert_close(rotated[:, 0], x[:, 0])  # position 0 is not rotated
    # relative: a query-key score depends only on the distance between their positions
    q, k = torch.randn(2, 1, 1, 1, 8, dtype=torch.float64)
    inv = inverse_frequencies(8, 10000.0, None)

    def score(query_pos: int, key_pos: int) -> torch.Tensor:
        at = lambda t, p: apply_rope(t, *rope_cos_sin(torch.tensor([[p]]), inv))  # noqa: E731
        return (at(q, query_pos) * at(k, key_pos)).sum()

    # (the tables are float32, as in training: equal up to float32 rounding of the angles)
    torch.testing.assert_close(score(5, 2), score(105, 102), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 4))


@pytest.mark.slow
def test_blocks_compile_without_graph_breaks():
    """strategy.compile compiles each block; fullgraph=True fails on any graph break."""
    torch.manual_seed(0)
    model = HyperCore(tiny())
    ids, doc_ids = torch.randint(0, 61, (2, 20)), torch.tensor([[0] * 8 + [1] * 12] * 2)
    want = model(ids, doc_ids=doc_ids).logits
    want.square().mean().backward()
    want_grad = model.layers[0].attention.wq.weight.grad.clone()
    model.zero_grad()
    for i, block in enumerate(model.layers):
        model.layers[i] = torch.compile(block, fullgraph=True)
    got = model(ids, doc_ids=doc_ids).logits
    got.square().mean().backward()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.layers[0].attention.wq.weight.grad, want_grad, atol=1e-6,
                               rtol=1e-5)


def test_generate_greedy_is_the_argmax_of_full_forwards_and_stops_at_eos():
    torch.manual_seed(0)
    cfg = tiny()
    model = HyperCore(cfg).eval()
    prompt = torch.randint(4, cfg.vocab_size, (2, 3))
    out = model.generate(prompt, 6, temperature=0, return_logits=True)
    assert out.ids.shape == (2, 9) and torch.equal(out.ids[:, :3], prompt)
    with torch.no_grad():
        full = model(out.ids[:, :-1]).logits[:, 2:]  # what each new symbol was chosen from
    torch.testing.assert_close(out.logits, full, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.ids[:, 3:], full.argmax(-1))
    top1 = model.generate(prompt, 6, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(top1.ids, out.ids)  # top-1 sampling is greedy
    eos = int(out.ids[0, 4])  # make row 0's second new symbol the end
    stopped = model.generate(prompt, 6, temperature=0, eos_id=eos)
    assert (stopped.ids[0, 4:] == eos).all()
    with pytest.raises(ValueError, match="longer than the model's context"):
        model.generate(prompt, cfg.max_seq_len)
