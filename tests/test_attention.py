"""Every attention backend against the plain explicit-softmax reference, packed and unpacked."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from dualmind.model import attention as attn

CPU = torch.device("cpu")


def _qkv(B=2, T=24, H=4, KV=2, D=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda h: torch.randn(B, T, h, D, generator=g, requires_grad=True)  # noqa: E731
    return make(H), make(KV), make(KV)


def _packed_doc_ids(B=2, T=24):
    # row 0: three documents, one of which reuses an id later (a run, not an id, is a document);
    # row 1: a single document (mixes packed and unpacked rows in one batch)
    row0 = [4] * 7 + [9] * 10 + [4] * 7
    return torch.tensor([row0[:T], [1] * T])


def _grads(out, tensors):
    weight = torch.linspace(-1, 1, out.numel()).view_as(out)  # a loss that touches every output
    return torch.autograd.grad((out * weight).sum(), tensors)


@pytest.mark.parametrize("packed", [False, True], ids=["unpacked", "packed"])
@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa", "mqa"])
def test_sdpa_matches_reference_forward_and_backward(packed, kv_heads):
    q, k, v = _qkv(KV=kv_heads)
    doc_ids = _packed_doc_ids() if packed else None
    layout = attn.build_layout("sdpa", doc_ids, 2, 24, CPU, torch.float32)
    assert layout.packed == packed
    out = attn.attend(q, k, v, layout)
    ref = attn.reference_attention(q, k, v, doc_ids)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(_grads(out, (q, k, v)), _grads(ref, (q, k, v)), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_sdpa_repeated_kv_heads_path_matches_reference(monkeypatch):
    """The path that copies k/v heads instead of enable_gqa (old torch; masked calls on CUDA)."""
    monkeypatch.setattr(attn, "_SDPA_HAS_GQA", False)
    q, k, v = _qkv(KV=2)
    for doc_ids in (None, _packed_doc_ids()):
        layout = attn.build_layout("sdpa", doc_ids, 2, 24, CPU, torch.float32)
        torch.testing.assert_close(attn.attend(q, k, v, layout),
                                   attn.reference_attention(q, k, v, doc_ids), atol=1e-5, rtol=1e-5)


def test_reference_mask_is_block_diagonal_causal():
    q, k, v = _qkv(B=1, T=6, H=1, KV=1)
    doc_ids = torch.tensor([[0, 0, 0, 1, 1, 1]])
    v2 = v.detach().clone()
    v2[:, :3] += 100.0  # change only document 0's values
    before = attn.reference_attention(q, k, v, doc_ids)
    after = attn.reference_attention(q, k, v2, doc_ids)
    torch.testing.assert_close(after[:, 3:], before[:, 3:])  # document 1 never reads document 0
    assert not torch.allclose(after[:, :3], before[:, :3])
    v3 = v.detach().clone()
    v3[:, 5] += 100.0  # the last position is read by nobody before it
    torch.testing.assert_close(attn.reference_attention(q, k, v3, doc_ids)[:, :5], before[:, :5])


def test_single_document_rows_take_the_unpacked_path():
    layout = attn.build_layout("sdpa", torch.full((2, 8), 3), 2, 8, CPU, torch.float32)
    assert not layout.packed and layout.sdpa_mask is None


def test_segments_and_positions_restart_per_document_run():
    doc_ids = torch.tensor([[5, 5, 7, 7, 7, 5], [1, 1, 1, 1, 1, 1]])
    assert attn.segment_ids(doc_ids).tolist() == [[0, 0, 1, 1, 1, 2], [0] * 6]
    assert attn.positions_in_document(doc_ids).tolist() == [[0, 1, 0, 1, 2, 0], list(range(6))]
    assert attn.document_lengths(attn.segment_ids(doc_ids)) == [2, 3, 1, 6]


def test_auto_picks_sdpa_on_cpu():
    assert attn.resolve_backend("auto", CPU, torch.float32) == "sdpa"
    assert attn.resolve_backend("auto", CPU, torch.bfloat16) == "sdpa"


@pytest.mark.parametrize("backend", ["flash", "xformers"])
def test_forced_unusable_backend_says_why_and_what_to_install(backend):
    if not attn.is_installed(backend):
        with pytest.raises(attn.BackendUnavailable, match=r"pip install 'dualmind\[gpu\]'"):
            attn.check_installed(backend)
        with pytest.raises(attn.BackendUnavailable, match="not installed"):
            attn.resolve_backend(backend, CPU, torch.bfloat16)
    else:  # installed (a GPU machine): still no CPU kernels
        with pytest.raises(attn.BackendUnavailable, match="CUDA"):
            attn.resolve_backend(backend, CPU, torch.bfloat16)


def test_installed_but_broken_backend_is_named_not_skipped(monkeypatch):
    """A flash-attn wheel built for another torch imports with an error: forcing it says so."""
    real_find_spec = attn.importlib.util.find_spec
    monkeypatch.setattr(attn.importlib.util, "find_spec",
                        lambda name: object() if name == "flash_attn" else real_find_spec(name))
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # importing it raises ImportError
    attn._import_error.cache_clear()
    try:
        with pytest.raises(attn.BackendUnavailable, match="installed but does not import"):
            attn.check_installed("flash")
        assert attn.resolve_backend("auto", CPU, torch.bfloat16) == "sdpa"
    finally:
        attn._import_error.cache_clear()


def test_unknown_backend_is_rejected():
    with pytest.raises(attn.BackendUnavailable, match="unknown attention backend 'triton'"):
        attn.check_installed("triton")


# ---- flash-attn and xformers plumbing, checked with stand-in kernels ----
# The real kernels need CUDA. These stand-ins compute plain attention per document from exactly
# the arguments our code passes (cu_seqlens, block-diagonal seqlens, 5-D GQA views), so a wrong
# offset, reshape or head grouping fails here on CPU.

def _causal_ref(q, k, v):  # [T,H,D], k/v [S,KV,D]; S > T: bottom-right, as flash-attn >= 2.1
    return attn.reference_attention(q[None], k[None], v[None])[0]


@pytest.fixture
def fake_flash(monkeypatch):
    mod = types.ModuleType("flash_attn")

    def flash_attn_func(q, k, v, causal):
        assert causal
        return torch.stack([_causal_ref(q[b], k[b], v[b]) for b in range(q.shape[0])])

    def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                               causal):
        assert causal and torch.equal(cu_seqlens_q, cu_seqlens_k)
        assert cu_seqlens_q.dtype == torch.int32 and int(cu_seqlens_q[-1]) == q.shape[0]
        bounds = cu_seqlens_q.tolist()
        assert max_seqlen_q == max(b - a for a, b in zip(bounds, bounds[1:], strict=False))
        return torch.cat([_causal_ref(q[a:b], k[a:b], v[a:b])
                          for a, b in zip(bounds, bounds[1:], strict=False)])

    mod.flash_attn_func, mod.flash_attn_varlen_func = flash_attn_func, flash_attn_varlen_func
    monkeypatch.setitem(sys.modules, "flash_attn", mod)


@pytest.fixture
def fake_xformers(monkeypatch):
    class LowerTriangularMask:
        pass

    class LowerTriangularFromBottomRightMask:
        pass

    class BlockDiagonalCausalMask:
        def __init__(self, seqlens):
            self.seqlens = seqlens

        @classmethod
        def from_seqlens(cls, seqlens):
            return cls(list(seqlens))

    def memory_efficient_attention(q, k, v, attn_bias):  # 5-D [B, M, G, H/G, D]
        assert q.dim() == 5 and k.shape[2:] == q.shape[2:] and v.shape == k.shape
        B, M, G, Hg, D = q.shape
        q, k, v = (t.reshape(B, t.shape[1], G * Hg, D) for t in (q, k, v))
        if isinstance(attn_bias, LowerTriangularFromBottomRightMask):
            out = attn.reference_attention(q, k, v)
        elif isinstance(attn_bias, LowerTriangularMask):
            assert k.shape[1] == M  # top-left causal is only right without a cache
            out = attn.reference_attention(q, k, v)
        else:
            assert B == 1 and sum(attn_bias.seqlens) == M
            doc = torch.repeat_interleave(torch.arange(len(attn_bias.seqlens)),
                                          torch.tensor(attn_bias.seqlens))
            out = attn.reference_attention(q, k, v, doc[None])
        return out.reshape(B, M, G, Hg, D)

    bias_mod = types.ModuleType("xformers.ops.fmha.attn_bias")
    bias_mod.LowerTriangularMask, bias_mod.BlockDiagonalCausalMask = \
        LowerTriangularMask, BlockDiagonalCausalMask
    bias_mod.LowerTriangularFromBottomRightMask = LowerTriangularFromBottomRightMask
    fmha = types.ModuleType("xformers.ops.fmha")
    fmha.memory_efficient_attention, fmha.attn_bias = memory_efficient_attention, bias_mod
    for name, mod in {"xformers": types.ModuleType("xformers"),
                      "xformers.ops": types.ModuleType("xformers.ops"),
                      "xformers.ops.fmha": fmha, "xformers.ops.fmha.attn_bias": bias_mod}.items():
        monkeypatch.setitem(sys.modules, name, mod)


@pytest.mark.parametrize("packed", [False, True], ids=["unpacked", "packed"])
@pytest.mark.parametrize("backend", ["flash", "xformers"])
def test_cuda_backend_plumbing_with_stand_in_kernels(backend, packed, request):
    request.getfixturevalue(f"fake_{backend}")
    q, k, v = _qkv(KV=2)
    doc_ids = _packed_doc_ids() if packed else None
    layout = attn.layout_for(backend, doc_ids, 2, 24, CPU)
    out = attn.attend(q, k, v, layout)
    torch.testing.assert_close(out, attn.reference_attention(q, k, v, doc_ids), atol=1e-5,
                               rtol=1e-5)
    if backend == "flash" and packed:
        assert layout.cu_seqlens.tolist() == [0, 7, 17, 24, 48] and layout.max_seqlen == 24


@pytest.mark.parametrize("new", [1, 5], ids=["one-query", "several-queries"])
@pytest.mark.parametrize("backend", ["sdpa", "flash", "xformers"])
def test_decode_with_cached_keys_matches_the_full_causal_attention(backend, new, request):
    if backend != "sdpa":
        request.getfixturevalue(f"fake_{backend}")
    q, k, v = _qkv(KV=2)  # 24 positions: the first 24 - new are "cached"
    full = attn.reference_attention(q, k, v)
    past = 24 - new
    layout = attn.layout_for(backend, None, 2, new, CPU, past=past)
    out = attn.attend(q[:, past:], k, v, layout)
    torch.testing.assert_close(out, full[:, past:], atol=1e-5, rtol=1e-5)
