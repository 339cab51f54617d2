"""Causal self-attention over packed sequences, with three interchangeable backends.

    flash     flash-attn 2 (CUDA, fp16/bf16, Ampere or newer). Packed documents go through
              ``flash_attn_varlen_func`` with ``cu_seqlens``: no mask is ever materialised.
    xformers  xformers' memory-efficient attention (CUDA) with a ``BlockDiagonalCausalMask``.
    sdpa      ``torch.nn.functional.scaled_dot_product_attention`` (CPU and GPU). Unpacked batches
              use ``is_causal=True``; packed ones a block-diagonal causal boolean mask [B,1,T,T]
              (O(T²) bytes per row — fine on CPU and for moderate T; prefer flash on GPU).
    auto      the fastest usable one for the tensors at hand: flash, then xformers, then sdpa.

A forced backend that is not installed raises :class:`BackendUnavailable` when the model is built;
one that cannot run on the device or dtype it meets raises it at the first forward. Neither falls
back silently. flash-attn and xformers are imported lazily, only when used.

Packing: ``doc_ids`` [B,T] gives each position a document id. A document is a run of equal
consecutive ids within a row; a position attends only to earlier positions of its own run (so
``[5,5,7,7,5]`` is three documents, the same on every backend). Tensors use the layout
[B, T, heads, head_dim] throughout (flash-attn's and xformers' native one).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "flash", "xformers", "sdpa")
INSTALL_HINT = "install the GPU extra: pip install 'dualmind[gpu]'"
_SDPA_HAS_GQA = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


class BackendUnavailable(RuntimeError):
    """A forced attention backend cannot run here; the message says why and what to do."""


# ---- choosing a backend ----

_MODULES = {"flash": "flash_attn", "xformers": "xformers"}
_PACKAGES = {"flash": "flash-attn", "xformers": "xformers"}


@functools.cache
def _import_error(backend: str) -> str | None:
    """None if the backend's package imports, else why not (checked once per process)."""
    if backend not in _MODULES:  # sdpa (and auto) need nothing beyond torch
        return None
    if importlib.util.find_spec(_MODULES[backend]) is None:
        return f"the {_PACKAGES[backend]} package is not installed ({INSTALL_HINT})"
    try:
        importlib.import_module(_MODULES[backend])
    except Exception as err:  # a wheel built for another torch/CUDA fails here, not at find_spec
        return (f"the {_PACKAGES[backend]} package is installed but does not import "
                f"({type(err).__name__}: {err}); reinstall it for this torch ({INSTALL_HINT})")
    return None


def is_installed(backend: str) -> bool:
    return _import_error(backend) is None


def unusable_reason(backend: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why ``backend`` cannot run on tensors of this device/dtype, or None if it can."""
    if backend == "sdpa":
        return None
    if _import_error(backend) is not None:
        return _import_error(backend)
    if device.type != "cuda":
        return f"it only has CUDA kernels and the tensors are on {device.type}"
    if backend == "flash":
        if dtype not in (torch.float16, torch.bfloat16):
            return (f"flash-attn needs float16 or bfloat16 inputs, got {dtype} "
                    "(train with bf16 autocast/precision, or use attn_backend=sdpa)")
        major, _ = torch.cuda.get_device_capability(device)
        if major < 8:
            return "flash-attn 2 needs an Ampere (sm80) or newer GPU"
    return None


def check_installed(backend: str) -> None:
    """Fail fast at model construction for a forced backend that is not installed."""
    if backend not in BACKENDS:
        raise BackendUnavailable(f"unknown attention backend {backend!r}; choose one of {BACKENDS}")
    if backend in _MODULES and _import_error(backend) is not None:
        raise BackendUnavailable(f"attn_backend={backend!r} was requested but "
                                 f"{_import_error(backend)}; or set attn_backend=auto/sdpa")


def resolve_backend(requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """The concrete backend for tensors on ``device`` with ``dtype``."""
    if requested == "auto":
        for candidate in ("flash", "xformers"):
            if unusable_reason(candidate, device, dtype) is None:
                return candidate
            if device.type == "cuda" and is_installed(candidate) is False \
                    and importlib.util.find_spec(_MODULES[candidate]) is not None:
                _warn_once(f"attn_backend=auto skips {candidate}: {_import_error(candidate)}")
        return "sdpa"
    if requested not in BACKENDS:
        raise BackendUnavailable(
            f"unknown attention backend {requested!r}; choose one of {BACKENDS}")
    reason = unusable_reason(requested, device, dtype)
    if reason is not None:
        raise BackendUnavailable(f"attn_backend={requested!r} cannot run: {reason}")
    return requested


# ---- the per-forward layout (built once, shared by every layer) ----

def segment_ids(doc_ids: torch.Tensor) -> torch.Tensor:
    """[B,T] -> [B,T] index of each position's document run within its row (0, 0, 1, 1, 2, ...)."""
    changes = torch.zeros_like(doc_ids, dtype=torch.int64)
    changes[:, 1:] = (doc_ids[:, 1:] != doc_ids[:, :-1]).to(torch.int64)
    return changes.cumsum(dim=1)


def positions_in_document(doc_ids: torch.Tensor) -> torch.Tensor:
    """[B,T] RoPE positions that restart at 0 at each document run."""
    B, T = doc_ids.shape
    index = torch.arange(T, device=doc_ids.device).expand(B, T)
    starts = torch.ones_like(doc_ids, dtype=torch.bool)
    starts[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    # position of the most recent start at or before each index
    last_start = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - last_start


@dataclass
class AttentionLayout:
    """What every layer's attention needs to know about the batch, computed once per forward.

    ``past`` > 0 is incremental decoding: the T queries are the newest positions and the keys are
    the past + T positions of a KV cache; query i sees keys 0 .. past + i ("bottom-right" causal).
    """

    backend: str
    packed: bool
    past: int = 0
    sdpa_mask: torch.Tensor | None = None  # sdpa: bool [B|1, 1, T, past+T], True = may attend
    cu_seqlens: torch.Tensor | None = None  # flash: int32 [n_docs + 1] over the flattened B*T
    max_seqlen: int = 0  # flash: longest document
    xformers_bias: object | None = None  # xformers: an attn_bias object


def build_layout(requested: str, doc_ids: torch.Tensor | None, batch: int, seq_len: int,
                 device: torch.device, dtype: torch.dtype, past: int = 0) -> AttentionLayout:
    """Resolve the backend for these tensors and precompute its view of the packing."""
    backend = resolve_backend(requested, device, dtype)
    return layout_for(backend, doc_ids, batch, seq_len, device, past)


def layout_for(backend: str, doc_ids: torch.Tensor | None, batch: int, seq_len: int,
               device: torch.device, past: int = 0) -> AttentionLayout:
    """The layout for an already-resolved backend (tests call it directly with stand-in kernels)."""
    if past:
        if doc_ids is not None:
            raise ValueError("packed doc_ids cannot be combined with a KV cache: decode one "
                             "sequence per batch row")
        return _decode_layout(backend, seq_len, device, past)
    packed = False
    if doc_ids is not None:
        if doc_ids.shape != (batch, seq_len):
            raise ValueError(
                f"doc_ids has shape {tuple(doc_ids.shape)}, expected {(batch, seq_len)}")
        segments = segment_ids(doc_ids)
        # one sync, so batches without a boundary take is_causal; on meta, assume packing
        packed = device.type == "meta" or bool((segments[:, -1] > 0).any())
    if not packed:
        layout = AttentionLayout(backend, packed=False)
        if backend == "xformers":
            layout.xformers_bias = importlib.import_module("xformers.ops.fmha.attn_bias") \
                .LowerTriangularMask()
        return layout
    if backend == "sdpa":
        causal = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()
        same_doc = segments[:, :, None] == segments[:, None, :]
        return AttentionLayout(backend, packed=True, sdpa_mask=(same_doc & causal)[:, None])
    lengths = document_lengths(segments)
    if backend == "flash":
        cu = torch.zeros(len(lengths) + 1, dtype=torch.int32, device=device)
        cu[1:] = torch.tensor(lengths, device=device).cumsum(0)
        return AttentionLayout(backend, packed=True, cu_seqlens=cu, max_seqlen=max(lengths))
    attn_bias = importlib.import_module("xformers.ops.fmha.attn_bias")
    return AttentionLayout(backend, packed=True,
                           xformers_bias=attn_bias.BlockDiagonalCausalMask.from_seqlens(lengths))


def _decode_layout(backend: str, seq_len: int, device: torch.device, past: int
                   ) -> AttentionLayout:
    layout = AttentionLayout(backend, packed=False, past=past)
    if backend == "sdpa" and seq_len > 1:  # one new query sees every key: no mask at all
        keys = torch.arange(past + seq_len, device=device)
        queries = torch.arange(past, past + seq_len, device=device)
        layout.sdpa_mask = (keys[None, :] <= queries[:, None])[None, None]
    elif backend == "xformers":
        layout.xformers_bias = importlib.import_module("xformers.ops.fmha.attn_bias") \
            .LowerTriangularFromBottomRightMask()
    # flash: flash_attn_func(causal=True) aligns the mask bottom-right when keys outnumber queries
    return layout


def document_lengths(segments: torch.Tensor) -> list[int]:
    """Lengths of the document runs of all rows, in flattened (row-major) order."""
    B, T = segments.shape
    offset = torch.arange(B, device=segments.device)[:, None] * (T + 1)  # rows never merge
    _, counts = torch.unique_consecutive((segments + offset).flatten(), return_counts=True)
    return counts.tolist()


# ---- attending ----

def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: AttentionLayout
           ) -> torch.Tensor:
    """q [B,T,H,Dh], k/v [B,past+T,KV,Dh] (H a multiple of KV) -> [B,T,H,Dh].

    Causal within documents; with a KV cache (layout.past > 0) the queries are the last T
    positions of the keys.
    """
    if layout.backend == "sdpa":
        return _sdpa(q, k, v, layout)
    if layout.backend == "flash":
        return _flash(q, k, v, layout)
    if layout.backend == "xformers":
        return _xformers(q, k, v, layout)
    raise BackendUnavailable(f"unknown attention backend {layout.backend!r}")


def _sdpa(q, k, v, layout: AttentionLayout) -> torch.Tensor:
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # -> [B, heads, T, Dh]
    gqa = {}
    if k.shape[1] != q.shape[1]:
        # enable_gqa avoids copying k/v, but on CUDA a masked call with it falls back to the math
        # kernel (T×T scores in memory); repeating the heads keeps the memory-efficient kernel.
        masked_on_cuda = layout.sdpa_mask is not None and q.device.type == "cuda"
        if _SDPA_HAS_GQA and not masked_on_cuda:
            gqa = {"enable_gqa": True}
        else:
            k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], dim=1) for t in (k, v))
    if layout.sdpa_mask is not None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=layout.sdpa_mask, **gqa)
    else:  # plain causal, or a single decode query that sees all its keys
        out = F.scaled_dot_product_attention(q, k, v, is_causal=layout.past == 0, **gqa)
    return out.transpose(1, 2)


def _flash(q, k, v, layout: AttentionLayout) -> torch.Tensor:
    flash_attn = importlib.import_module("flash_attn")  # GQA is native in flash-attn 2
    if not layout.packed:
        return flash_attn.flash_attn_func(q, k, v, causal=True)
    B, T, H, D = q.shape
    out = flash_attn.flash_attn_varlen_func(
        q.reshape(B * T, H, D), k.reshape(B * T, -1, D), v.reshape(B * T, -1, D),
        cu_seqlens_q=layout.cu_seqlens, cu_seqlens_k=layout.cu_seqlens,
        max_seqlen_q=layout.max_seqlen, max_seqlen_k=layout.max_seqlen, causal=True)
    return out.view(B, T, H, D)


def _xformers(q, k, v, layout: AttentionLayout) -> torch.Tensor:
    fmha = importlib.import_module("xformers.ops.fmha")
    B, T, H, D = q.shape
    KV = k.shape[2]
    if layout.packed:  # block-diagonal masks want one long "batch" row
        q, k, v = (t.reshape(1, B * T, t.shape[2], D) for t in (q, k, v))
    # GQA via xformers' 5-D [B, T, groups, heads per group, D] form; k/v broadcast, not copied.
    n = q.shape[0]
    q5 = q.reshape(n, -1, KV, H // KV, D)
    k5 = k.reshape(n, -1, KV, 1, D).expand(-1, -1, -1, H // KV, -1)
    v5 = v.reshape(n, -1, KV, 1, D).expand(-1, -1, -1, H // KV, -1)
    out = fmha.memory_efficient_attention(q5, k5, v5, attn_bias=layout.xformers_bias)
    return out.reshape(B, T, H, D)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        doc_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Plain explicit-softmax attention (the yardstick the tests hold every backend to).

    With more keys than queries (a KV cache) the queries are the last positions (bottom-right).
    """
    B, T, H, D = q.shape
    S = k.shape[1]
    group = H // k.shape[2]
    k, v = (t.repeat_interleave(group, dim=2) for t in (k, v))
    scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) / D ** 0.5
    query_pos = torch.arange(S - T, S, device=q.device)
    allowed = (torch.arange(S, device=q.device)[None, :] <= query_pos[:, None])[None, None]
    if doc_ids is not None:
        seg = segment_ids(doc_ids)
        allowed = allowed & (seg[:, None, :, None] == seg[:, None, None, :])
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v.float()).type_as(q)
