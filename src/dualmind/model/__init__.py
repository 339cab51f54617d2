"""Plain ``nn.Module``s built from a config.

    config        CoreConfig: shapes from conf/model/*.yaml, closed-form parameters and FLOPs
    core          HyperCore: the Llama-style hyper-core (packing, KV cache, hidden states)
    attention     causal attention over packed sequences: flash-attn | xformers | torch SDPA
    rope          rotary positions and their long-context scaling (linear, ntk, llama3)
    kv_cache      keys/values of past positions for incremental decoding
    loss          chunked cross entropy (no full [B, T, vocab] logits)
    sampling      choosing the next id from logits (core and decoder generation)
    llama_format  Llama weights (transformers / Meta layouts) <-> HyperCore
    decoder*, cross_attention, masks   the language decoder that reads the core (issue 4)

Nothing here imports Lightning, Hydra or the data pipeline; ``config`` does not even import torch,
so the planner can count parameters without it. The core never imports the decoder. Import
submodules directly, e.g. ``from dualmind.model.config import CoreConfig``.
"""
