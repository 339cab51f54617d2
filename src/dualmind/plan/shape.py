"""The shape of a Llama-style decoder as the planner needs it, and its closed-form counts.

The planner's numbers for dualmind's own models come from ``conf/model/*.yaml`` through
``dualmind.model.config.CoreConfig`` (one source of truth; see ``from_core_config``), and are
cross-checked against a model built on the ``meta`` device. Published models (Llama 3,
Chinchilla) are written here directly so the arithmetic can be checked against the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelShape:
    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    vocab_size: int
    tie_embeddings: bool = False
    head_dim_override: int | None = None  # when heads are not d_model / n_heads wide

    @property
    def head_dim(self) -> int:
        return self.head_dim_override or self.d_model // self.n_heads

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    # --- parameters -------------------------------------------------------------------
    # The closed forms live in ``dualmind.model.config.CoreConfig`` (one source of truth);
    # the counts here read them through ``core_config()``.
    def core_config(self):
        """This shape as a ``CoreConfig`` (no torch is imported), for its closed-form counts."""
        from dualmind.model.config import CoreConfig

        return CoreConfig(
            vocab_size=self.vocab_size,
            dim=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            ffn_dim=self.ffn_hidden,
            n_kv_heads=self.n_kv_heads,
            head_dim=self.head_dim,
            tie_embeddings=self.tie_embeddings,
        )

    def block_params(self) -> int:
        """One transformer block: q,k,v,o projections, SwiGLU (3 matrices), two RMSNorms."""
        # non-embedding = n_layers blocks + the final norm (d weights)
        return (self.core_config().non_embedding_params() - self.d_model) // self.n_layers

    def embedding_params(self) -> int:
        return self.vocab_size * self.d_model

    def num_params(self) -> int:
        """All parameters: embedding, blocks, final norm, output head (unless tied)."""
        return self.core_config().num_params()

    def matmul_params(self) -> int:
        """Parameters that take part in a matmul per position: all but the input embedding
        lookup (which is a gather). With tied embeddings the shared matrix is the output head."""
        return self.core_config().matmul_params()

    # --- FLOPs ------------------------------------------------------------------------
    def attention_flops_per_token(self, seq_len: int) -> float:
        """Training (fwd+bwd) attention FLOPs per position, PaLM/torchtitan convention:
        12 * layers * d_attn * seq_len (QK^T and AV, 2 FLOPs per MAC, x3 for backward),
        counted as if unmasked — the convention MFU figures (PaLM App. B, Llama 3) use.
        Read off ``CoreConfig.flops_per_token`` (training total minus 6 * N_matmul)."""
        core = self.core_config()
        return core.flops_per_token(seq_len) - 6.0 * core.matmul_params()

    def train_flops_per_token(self, seq_len: int) -> float:
        """6 * N_matmul + attention term (Kaplan 2020 / PaLM App. B / torchtitan), from
        ``CoreConfig.flops_per_token``."""
        return self.core_config().flops_per_token(seq_len)

    def forward_flops_per_token(self, context: int) -> float:
        """Inference forward pass per position at a given context: a third of training."""
        return self.core_config().flops_per_token(context, training=False)

    # --- activations ------------------------------------------------------------------
    def activation_bytes_per_token_layer(self) -> float:
        """Bytes one ``dualmind.model.core.Block`` keeps for backward per position, with no
        checkpointing, in bf16 with a fused (flash) attention that never stores the scores.
        Counted from the block's code and checked against its saved tensors
        (tests/test_plan.py::test_activation_formula_matches_saved_tensors):
        - each RMSNorm (2 per block) keeps its input upcast to fp32 (4d), the normalised value
          (2d, for the weight's grad) and its output (2d, the next matmul's input): 8d;
        - attention keeps q, k, v after RoPE (2q + 4kv) and its output (2q), which is also the
          input of wo;
        - SwiGLU keeps w1 out, w3 out, silu(w1 out) and their product (the input of w2): 8f.
        The per-row log-sum-exp and norm statistics are negligible and left out. Assumes
        flash-attn (what ``attn_backend: auto`` picks on a GPU where it is installed): torch SDPA
        with a packing mask on CUDA repeats the kv heads, so k and v are kept at the query
        width, 4*(q - kv) bytes more."""
        d, q, kv, f = self.d_model, self.q_dim, self.kv_dim, self.ffn_hidden
        return 16.0 * d + 4.0 * q + 4.0 * kv + 8.0 * f

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(num_params=self.num_params(), matmul_params=self.matmul_params())
        return out


# Published shapes (Llama 3 paper Table 3; Meta's params.json): 128,256-token vocabulary,
# untied embeddings, GQA with 8 KV heads.
LLAMA3_8B = ModelShape("llama3-8b", 32, 4096, 32, 8, 14336, 128256)
LLAMA3_70B = ModelShape("llama3-70b", 80, 8192, 64, 8, 28672, 128256)
LLAMA3_405B = ModelShape("llama3-405b", 126, 16384, 128, 8, 53248, 128256)


def from_core_config(cfg, name: str) -> ModelShape:
    """Read a ``dualmind.model.config.CoreConfig`` (the conf/model/*.yaml source of truth)."""
    return ModelShape(
        name=name,
        n_layers=cfg.n_layers,
        d_model=cfg.dim,
        n_heads=cfg.n_heads,
        n_kv_heads=cfg.n_kv_heads,
        ffn_hidden=cfg.ffn_dim,
        vocab_size=cfg.vocab_size,
        tie_embeddings=cfg.tie_embeddings,
        head_dim_override=None if cfg.head_dim == cfg.dim // cfg.n_heads else cfg.head_dim,
    )
