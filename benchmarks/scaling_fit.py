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


FLOOR_STEPS = 200  # candidate shared floors, as fractions of the lowest point's bits per byte


def fit_shared_floor(flops: dict[str, np.ndarray], bpb: dict[str, np.ndarray]
                     ) -> dict[str, np.ndarray]:
    """One floor E for every system, its own A and alpha each: {system: [R, 3]} from flops
    {system: [P]} and bpb {system: [R, P]}. Every system codes the same bytes, so with unlimited
    compute none can go below the text's own entropy, and the two-headed code H(h) + H(text | h)
    reaches it at best: the floor is a property of the text, not of the system. Profiled over E
    (a grid below the lowest point of each replicate); for fixed E and alpha the best A >= 0 is
    closed form."""
    names = list(bpb)
    rows = next(iter(bpb.values())).shape[0]
    lowest = np.min([bpb[s].min(axis=1) for s in names], axis=0)  # [R]
    best_sse = np.full(rows, np.inf)
    best = {s: np.zeros((rows, 3)) for s in names}
    index = np.arange(rows)
    for fraction in np.linspace(0.0, 0.999, FLOOR_STEPS):
        floor = fraction * lowest
        total, trial = np.zeros(rows), {}
        for s in names:
            x = (np.asarray(flops[s], dtype=np.float64)[None, :] / C0) ** -ALPHAS[:, None]  # [K, P]
            y = bpb[s] - floor[:, None]  # [R, P]
            num, den = y @ x.T, (x * x).sum(axis=1)  # [R, K], [K]
            a = np.maximum(num / den, 0.0)
            sse = (y * y).sum(axis=1)[:, None] - 2 * a * num + a * a * den
            k = sse.argmin(axis=1)
            trial[s] = np.stack([floor, a[index, k], ALPHAS[k]], axis=1)
            total += sse[index, k]
        better = total < best_sse
        best_sse = np.where(better, total, best_sse)
        for s in names:
            best[s][better] = trial[s][better]
    return best


def predict(params: np.ndarray, flops) -> np.ndarray:
    """L(C) for params [..., 3] at flops (scalar or array broadcasting against params[..., 0])."""
    params = np.asarray(params, dtype=np.float64)
    e, a, alpha = params[..., 0], params[..., 1], params[..., 2]
    return e + a * (np.asarray(flops, dtype=np.float64) / C0) ** -alpha


def crossing(system: np.ndarray, baseline: np.ndarray, start: float,
             stop: float = 1e30) -> float | None:
    """The compute from which the system's law stays at or below the baseline's, up to `stop`:
    `start` if it is ahead all along, None if it is behind at `stop`."""
    grid = np.logspace(np.log10(start), np.log10(stop), 2000)
    behind = predict(system, grid) > predict(baseline, grid)
    if behind[-1]:
        return None
    last = np.flatnonzero(behind)
    return float(grid[0] if not len(last) else grid[last[-1] + 1])


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = 50 * (1 - level)
    lo, hi = np.percentile(np.asarray(samples, dtype=np.float64), [tail, 100 - tail])
    return float(lo), float(hi)
