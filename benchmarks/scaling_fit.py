"""Scaling-law fits of the scaling study: L(C) = E + A * (C / C0)^(-alpha), bits per byte against
training FLOPs, fitted by least squares in L, vectorised over bootstrap replicates.

For a fixed alpha the law is linear in (E, A), so the fit scans alpha on a fine grid and solves
(E, A) in closed form at each, keeping E >= 0 (bits per byte cannot go below zero) and A >= 0
(more compute never hurts); the best alpha per replicate wins. No optimiser, no starting point:
the same data always give the same fit.
"""

from __future__ import annotations

import numpy as np

C0 = 1e12  # FLOPs: the unit of C inside the fit, so that A is the excess loss at 1e12 FLOPs
ALPHAS = np.linspace(0.005, 2.0, 800)


def _fixed_alpha(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares (E, A) of y = E + A*x for each row of y [R, P], with E, A >= 0; returns
    (E, A, sum of squared errors), each [R]."""
    n = x.size
    sx, sxx = x.sum(), (x * x).sum()
    sy, sxy = y.sum(axis=1), y @ x
    det = n * sxx - sx * sx
    if det <= 0:  # every point at one budget: no slope to fit
        e, a = y.mean(axis=1), np.zeros(len(y))
    else:
        a = (n * sxy - sx * sy) / det
        e = (sy - a * sx) / n
    # a constraint that binds: refit the other parameter alone
    neg_a = a < 0
    a = np.where(neg_a, 0.0, a)
    e = np.where(neg_a, y.mean(axis=1), e)
    neg_e = e < 0
    a = np.where(neg_e, np.maximum(sxy / sxx, 0.0), a)
    e = np.where(neg_e, 0.0, e)
    sse = ((y - e[:, None] - a[:, None] * x[None, :]) ** 2).sum(axis=1)
    return e, a, sse


def fit(flops: np.ndarray, bpb: np.ndarray) -> np.ndarray:
    """Fitted (E, A, alpha) per row: flops [P] or [R, P], bpb [R, P] (or [P]) -> [R, 3] (or [3]).
    Needs at least three distinct budgets."""
    bpb = np.asarray(bpb, dtype=np.float64)
    single = bpb.ndim == 1
    y = bpb[None, :] if single else bpb
    c = np.broadcast_to(np.asarray(flops, dtype=np.float64), y.shape)
    if len(np.unique(c[0])) < 3:
        raise ValueError(f"a three-parameter law needs at least three budgets, got "
                         f"{len(np.unique(c[0]))}")
    if not np.all(c == c[0]):
        raise ValueError("every replicate must be fitted at the same budgets")
    best = np.full((len(y), 3), np.nan)
    best_sse = np.full(len(y), np.inf)
    for alpha in ALPHAS:
        e, a, sse = _fixed_alpha((c[0] / C0) ** -alpha, y)
        better = sse < best_sse
        best[better] = np.stack([e, a, np.full(len(y), alpha)], axis=1)[better]
        best_sse = np.where(better, sse, best_sse)
    return best[0] if single else best


def predict(params: np.ndarray, flops) -> np.ndarray:
    """L(C) for params [..., 3] at flops (scalar or array broadcasting against params[..., 0])."""
    params = np.asarray(params, dtype=np.float64)
    e, a, alpha = params[..., 0], params[..., 1], params[..., 2]
    return e + a * (np.asarray(flops, dtype=np.float64) / C0) ** -alpha


def crossing(system: np.ndarray, baseline: np.ndarray, start: float,
             stop: float = 1e30) -> float | None:
    """The smallest compute in [start, stop] where the system's law stops being worse than the
    baseline's (or stops being better: where the order flips), None if it never does there."""
    grid = np.logspace(np.log10(start), np.log10(stop), 2000)
    gap = predict(system, grid) - predict(baseline, grid)
    flips = np.flatnonzero(np.sign(gap[1:]) != np.sign(gap[0]))
    return None if not len(flips) else float(grid[flips[0] + 1])


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = 50 * (1 - level)
    lo, hi = np.percentile(np.asarray(samples, dtype=np.float64), [tail, 100 - tail])
    return float(lo), float(hi)
