"""Plain ``nn.Module``s built from a config: the hyper-core (``core``), its attention backends
(``attention``), RoPE (``rope``) and Llama-format weight mapping (``llama_format``).

Nothing here imports Lightning, Hydra or the data pipeline; ``config`` does not even import torch,
so the planner can count parameters without it. Import submodules directly, e.g.
``from dualmind.model.config import CoreConfig``.
"""
