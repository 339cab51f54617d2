"""dualmind plan: the compute planner (FLOPs, GPU-hours, memory, Chinchilla, equivalence).

Python API::

    from dualmind.plan import PlanRequest, plan
    p = plan(PlanRequest(recipe="core_70b", corpus="1TB", gpu="h100", gpus=256))
    p.compute["gpu_hours"], p.memory["min_gpus"], p.equivalence["compression"]

CLI: ``dualmind plan recipe=core_70b --corpus 1TB --gpu h100 --gpus 256`` (module
``dualmind.plan.cli``). Importing this package loads no torch.
"""

from .planner import Plan, PlanError, PlanRequest, plan

__all__ = ["Plan", "PlanError", "PlanRequest", "plan"]
