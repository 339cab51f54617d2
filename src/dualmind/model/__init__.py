"""Plain ``nn.Module``s built from a config: the Llama-style hyper-core, the language decoder that
reads it, attention backends, masks, losses. No Lightning, Hydra or data pipeline; imports
nothing of dualmind outside model/ (``config`` not even torch, for the planner)."""
