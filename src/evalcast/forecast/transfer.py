"""The target run's proxy law with the decay shape taken from references: only ``(L0, Ã, α)`` are fitted.

For a given α the law is linear in ``(L0, Ã)``: ``y = L0 + Ã·[S^(−α) − (B/A)·η_p^(1+α)·D(t)]`` with the
drop term D of the transferred shape on the target's own schedule. So the fit profiles α on a grid, with
``(L0, Ã)`` solved exactly (bounded) at each grid point, and a Gaussian prior on α from the references
(a short prefix barely tells α from L0). Residuals are relative, with the references' checkpoint noise σ.

Replicates (the bootstrap over checkpoints): the fitted curve times ``exp(σ·ε)`` at each checkpoint, the
prior's mean redrawn from the prior, and the shape cycled through the references' spread of shapes; each
replicate is refitted on the α grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from evalcast.forecast.fit import bounded_lstsq
from evalcast.forecast.multipower import DecayShape, ScheduleTerms, mpl, run_drop

_ALPHA_GRID = np.geomspace(0.01, 3.0, 161)


@dataclass(frozen=True)
class AlphaPrior:
    """Gaussian prior on the target's exponent α."""

    mean: float
    sd: float


@dataclass(frozen=True, eq=False)
class TransferFit:
    """The target's law: the point curve and replicate curves at the prediction steps, and the parameters."""

    point: np.ndarray
    replicates: np.ndarray
    l0: float
    a: float
    alpha: float
    r2: float


def _columns(alpha: np.ndarray, shape: DecayShape | None, terms: ScheduleTerms) -> np.ndarray:
    """``(G, n)`` second design column ``S^(−α) − (B/A)·η_p^(1+α)·D`` for each α."""
    col = terms.s1[None, :] ** (-alpha[:, None])
    if shape is not None and terms.decays:
        col = col - shape.drop_ratio * terms.eta_peak ** (1.0 + alpha[:, None]) * run_drop(terms, shape)[None, :]
    return col


def _solve(alpha: np.ndarray, shape: DecayShape | None, terms: ScheduleTerms, scale: np.ndarray,
           targets: np.ndarray, l0_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Per α and target row: ``(L0, Ã)`` ``(B, G, 2)`` and χ²/2 ``(B, G)``."""
    col = _columns(alpha, shape, terms)
    design = np.stack([np.ones_like(col), col], axis=-1) / scale[None, :, None]
    return bounded_lstsq(design, targets / scale[None, :], np.zeros(2), np.array([l0_max, np.inf]))


def _map_fit(y: np.ndarray, scale: np.ndarray, l0_max: float, prior: AlphaPrior, shape: DecayShape | None,
             terms: ScheduleTerms) -> tuple[float, float, float] | None:
    """``(L0, Ã, α)`` at the posterior mode: the α grid, then a bounded scalar search between its neighbours."""
    _, cost = _solve(_ALPHA_GRID, shape, terms, scale, y[None, :], l0_max)
    total = cost[0] + 0.5 * ((_ALPHA_GRID - prior.mean) / prior.sd) ** 2
    g = int(np.argmin(total))
    if not np.isfinite(total[g]):
        return None
    lo_a, hi_a = _ALPHA_GRID[max(g - 1, 0)], _ALPHA_GRID[min(g + 1, _ALPHA_GRID.size - 1)]

    def profile(log_alpha: float) -> float:
        a = np.array([np.exp(log_alpha)])
        c = _solve(a, shape, terms, scale, y[None, :], l0_max)[1][0, 0]
        return float(c + 0.5 * ((a[0] - prior.mean) / prior.sd) ** 2)

    res = minimize_scalar(profile, bounds=(np.log(lo_a), np.log(hi_a)), method="bounded", options={"xatol": 1e-4})
    alpha = float(np.exp(res.x)) if res.success and res.fun <= total[g] else float(_ALPHA_GRID[g])
    l0, a = _solve(np.array([alpha]), shape, terms, scale, y[None, :], l0_max)[0][0, 0]
    return float(l0), float(a), alpha


def _point(y: np.ndarray, scale: np.ndarray, l0_max: float, prior: AlphaPrior, shape: DecayShape | None,
           fit_terms: ScheduleTerms, pred_terms: ScheduleTerms) -> np.ndarray:
    best = _map_fit(y, scale, l0_max, prior, shape, fit_terms)
    return mpl(*best, shape, pred_terms) if best is not None else np.full(pred_terms.s1.size, np.nan)


def fit_transfer(y: np.ndarray, fit_terms: ScheduleTerms, pred_terms: ScheduleTerms, shape: DecayShape | None,
                 spread: Sequence[DecayShape], spread_scale: float, prior: AlphaPrior, sigma: float, n_rep: int,
                 rng: np.random.Generator) -> TransferFit | None:
    """Fit ``(L0, Ã, α)`` on ``y`` (positive, at ``fit_terms``' steps) and forecast at ``pred_terms``' steps.

    Each shape of ``spread`` gets an equal share of the replicates; its replicates are moved by
    ``(spread_scale − 1)`` times the gap between its own noise-free forecast and the mean of those
    forecasts (the jackknife's inflation, applied to forecasts rather than to the shape's parameters)."""
    y = np.asarray(y, dtype=float)
    if y.size < 2 or np.any(~np.isfinite(y)) or np.any(y <= 0) or not sigma > 0:
        return None
    scale = sigma * y
    l0_max = float(np.max(y))
    best = _map_fit(y, scale, l0_max, prior, shape, fit_terms)
    if best is None:
        return None
    l0, a, alpha = best
    fitted = mpl(l0, a, alpha, shape, fit_terms)
    point = mpl(l0, a, alpha, shape, pred_terms)
    shapes: list[DecayShape | None] = list(spread) if spread and pred_terms.decays else [shape]
    per = -(-n_rep // len(shapes))
    reps, centres = [], []
    for s in shapes:
        centres.append(_point(y, scale, l0_max, prior, s, fit_terms, pred_terms))
        noisy = fitted[None, :] * np.exp(sigma * rng.standard_normal((per, y.size)))
        means = prior.mean + prior.sd * rng.standard_normal(per)
        s_sol, s_cost = _solve(_ALPHA_GRID, s, fit_terms, scale, noisy, l0_max)
        s_total = s_cost + 0.5 * ((_ALPHA_GRID[None, :] - means[:, None]) / prior.sd) ** 2
        best = np.argmin(s_total, axis=1)
        rows = np.arange(per)
        lin = s_sol[rows, best]
        ok = np.isfinite(s_total[rows, best])
        curves = mpl(lin[:, 0], lin[:, 1], _ALPHA_GRID[best], s, pred_terms)
        reps.append(np.where(ok[:, None], curves, np.nan))
    mean_centre = np.mean(centres, axis=0)
    replicates = np.concatenate([r + (spread_scale - 1.0) * (c - mean_centre) for r, c in zip(reps, centres)])[:n_rep]
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - fitted) ** 2)) / ss if ss > 0 else float("nan")
    return TransferFit(point, replicates, float(l0), float(a), alpha, r2)
