"""The decay shape shared by reference runs: a joint fit of the multi-power law, and its spread.

One run's curve barely identifies the shape (C, β, γ) and the drop ratio B/A: on a simulated cosine run a
free fit matched the curve (R² 0.998) with β and γ at their bounds. Like the law's authors, who fit
several schedules together, the references are fitted jointly: the shape and B/A shared, ``(L0, Ã, α)``
per run, on relative residuals divided by each run's checkpoint noise σ_r. Given the shape and α the law
is linear in ``(L0, Ã)``, which are solved exactly (variable projection), so the least squares runs over
the four shared parameters and one α per run.

* Start: a grid over (κ at the median peak LR, β, γ); for each grid point and run, ``(L0, Ã, B̃)`` are
  solved exactly on an α grid (variable projection, B̃ free per run); the shape with the least summed cost
  wins and B/A starts at the runs' median.
* Joint least squares (sparse Jacobian: each run's rows touch the shared four and its own α).
* Spread: the leave-one-run-out jackknife, each refit started from the joint solution. The shape's
  parameters lie on a ridge (on three simulated runs, leave-one-out refits moved C from 0.002 to 3.8 with
  nearly the same curves, and one Gauss–Newton step instead of a refit jumped to C = 5e6), so the spread
  is meant for the *forecasts* it implies: their scatter around their mean, scaled by √(R−1), is the
  jackknife's standard error. With fewer than three runs, draws from the fit's Laplace approximation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix

from evalcast.forecast.fit import bounded_lstsq
from evalcast.forecast.multipower import DecayShape, ScheduleTerms, drop_term, mpl, run_drop

_KAPPA_GRID = np.geomspace(1e-5, 10.0, 8)
_BETA_GRID = np.array([0.25, 0.5, 0.75, 1.0, 1.5])
_GAMMA_GRID = np.array([0.2, 0.5, 0.8])
_ALPHA_GRID = np.geomspace(0.01, 3.0, 16)
_SHARED_LO = np.array([-30.0, 0.05, 0.0, -30.0])
_SHARED_HI = np.array([30.0, 5.0, 2.0, 30.0])
_ALPHA_LO, _ALPHA_HI = 0.01, 3.0


@dataclass(frozen=True, eq=False)
class LawSeries:
    """One run's loss-like proxy at its post-warm-up checkpoints, and the schedule terms there."""

    name: str
    y: np.ndarray
    terms: ScheduleTerms


@dataclass(frozen=True, eq=False)
class SharedShape:
    """The joint fit: the shared shape, each run's ``(L0, Ã, α)``, noise σ and R², and the spread."""

    shape: DecayShape
    runs: tuple[str, ...]
    run_params: np.ndarray
    """``(R, 3)``: each run's ``(L0, Ã, α)``."""
    sigma: np.ndarray
    r2: np.ndarray
    spread: tuple[DecayShape, ...]
    """Leave-one-run-out shapes (R ≥ 3), or Laplace draws: their forecasts' scatter around their mean,
    times ``spread_scale``, is the uncertainty of the transferred shape."""
    spread_scale: float


def _to_shape(phi: np.ndarray, source: str) -> DecayShape:
    return DecayShape(float(np.exp(phi[0])), float(phi[1]), float(phi[2]), float(np.exp(phi[3])), source)


def _grid_start(series: Sequence[LawSeries]) -> tuple[np.ndarray, np.ndarray]:
    """Shared ``φ = (log C, β, γ, log B/A)`` and each run's α from the grid."""
    eta_med = float(np.median([s.terms.eta_peak for s in series]))
    grid = np.array(np.meshgrid(_KAPPA_GRID, _BETA_GRID, _GAMMA_GRID, indexing="ij")).reshape(3, -1).T
    c_raw = grid[:, 0] * eta_med ** (grid[:, 2] - 1.0)
    total = np.zeros(grid.shape[0])
    per_run = []
    for s in series:
        y, t = s.y, s.terms
        drops = drop_term(t, c_raw * t.eta_peak ** (1.0 - grid[:, 2]), grid[:, 1], grid[:, 2])
        power = t.s1[None, :] ** (-_ALPHA_GRID[:, None])
        n_g, n_a = grid.shape[0], _ALPHA_GRID.size
        design = np.stack([np.ones((n_g, n_a, y.size)), np.broadcast_to(power[None], (n_g, n_a, y.size)),
                           np.broadcast_to(-drops[:, None, :], (n_g, n_a, y.size))], axis=-1)
        design = design.reshape(n_g * n_a, y.size, 3) / y[None, :, None]
        hi = np.array([float(np.max(y)), np.inf, np.inf])
        sol, cost = bounded_lstsq(design, np.ones((1, y.size)), np.zeros(3), hi)
        cost = cost[0].reshape(n_g, n_a)
        best_a = np.argmin(cost, axis=1)
        total += cost[np.arange(n_g), best_a] / y.size
        per_run.append((sol[0].reshape(n_g, n_a, 3), best_a))
    g = int(np.argmin(total))
    alphas, ratios = [], []
    for s, (sol, best_a) in zip(series, per_run):
        a_i = int(best_a[g])
        _l0, a, b = sol[g, a_i]
        alpha = float(_ALPHA_GRID[a_i])
        alphas.append(alpha)
        if a > 0 and b > 0:
            ratios.append(b / a * s.terms.eta_peak ** (-1.0 - alpha))
    ratio = float(np.median(ratios)) if ratios else 1e-6
    phi = np.array([np.log(c_raw[g]), grid[g, 1], grid[g, 2], np.log(ratio)])
    return np.clip(phi, _SHARED_LO, _SHARED_HI), np.array(alphas)


def fit_shared_shape(series: Sequence[LawSeries], *, with_spread: bool = True, start: SharedShape | None = None,
                     max_nfev: int = 100) -> SharedShape | None:
    """Joint fit of the law over ``series`` (each with a decaying schedule); None when it fails.

    ``with_spread=False`` skips the leave-one-run-out refits (``spread`` empty); ``start`` warm-starts
    from an earlier fit of overlapping runs (its shape, and α of the runs it shares) instead of the grid."""
    series = [s for s in series if s.y.size >= 4 and s.terms.decays]
    if not series:
        return None
    if start is None:
        phi0, alpha0 = _grid_start(series)
    else:
        phi0 = _to_phi(start.shape)
        known = dict(zip(start.runs, start.run_params[:, 2]))
        alpha0 = np.array([known.get(s.name, float(np.median(start.run_params[:, 2]))) for s in series])
    fitted = _joint(series, np.concatenate([phi0, alpha0]), max_nfev)
    if fitted is None:
        return None
    x, lin, sigma = fitted
    names = tuple(s.name for s in series)
    shape = _to_shape(x[:4], "+".join(names))
    params = np.column_stack([lin[:, 0], lin[:, 1], x[4:]])
    preds = [mpl(*p, shape, s.terms) for p, s in zip(params, series)]
    r2 = np.array([_r2(s.y, p) for s, p in zip(series, preds)])
    spread: list[DecayShape] = []
    scale = 1.0
    if with_spread and len(series) >= 3:
        for i in range(len(series)):
            keep = [j for j in range(len(series)) if j != i]
            x_i = np.concatenate([x[:4], x[4:][keep]])
            refit = _joint([series[j] for j in keep], x_i, max_nfev // 2)
            spread.append(_to_shape(refit[0][:4] if refit is not None else x[:4], f"without:{names[i]}"))
        scale = float(np.sqrt(len(series) - 1))
    elif with_spread:
        spread = _laplace(series, x)
    return SharedShape(shape, names, params, sigma, r2, tuple(spread), scale)


def _to_phi(shape: DecayShape) -> np.ndarray:
    return np.clip(np.array([np.log(shape.C), shape.beta, shape.gamma, np.log(max(shape.drop_ratio, 1e-300))]),
                   _SHARED_LO, _SHARED_HI)


def _projected(x: np.ndarray, series: Sequence[LawSeries], sigma: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relative residuals (divided by σ_r) with each run's ``(L0, Ã)`` solved exactly; and those ``(R, 2)``."""
    shape = _to_shape(x[:4], "")
    out, lin, raw = [], [], []
    for i, s in enumerate(series):
        alpha = x[4 + i]
        col = s.terms.s1 ** (-alpha) - shape.drop_ratio * s.terms.eta_peak ** (1.0 + alpha) * run_drop(s.terms, shape)
        coef = _two_params(1.0 / s.y, col / s.y, float(np.max(s.y)))
        rel = (coef[0] + coef[1] * col - s.y) / s.y
        lin.append(coef)
        raw.append(rel)
        out.append(rel / (sigma[i] if sigma is not None else 1.0))
    return np.concatenate(out), np.array(lin), np.array([_robust_sd(r) for r in raw])


def _two_params(a: np.ndarray, b: np.ndarray, l0_max: float) -> np.ndarray:
    """``(L0, Ã)`` minimising ``|a·L0 + b·Ã − 1|²`` with ``0 ≤ L0 ≤ l0_max``, ``Ã ≥ 0`` (the best feasible face)."""
    aa, ab, bb, a1, b1 = a @ a, a @ b, b @ b, a.sum(), b.sum()
    det = aa * bb - ab * ab
    candidates = []
    if det > 1e-300:
        candidates.append(((bb * a1 - ab * b1) / det, (aa * b1 - ab * a1) / det))
    for l0 in (0.0, l0_max):
        candidates.append((l0, max((b1 - ab * l0) / bb, 0.0) if bb > 0 else 0.0))
    candidates.append((min(max(a1 / aa, 0.0), l0_max) if aa > 0 else 0.0, 0.0))
    best, cost = np.zeros(2), np.inf
    for l0, amp in candidates:
        if 0.0 <= l0 <= l0_max and amp >= 0.0:
            c = float(np.sum((a * l0 + b * amp - 1.0) ** 2))
            if c < cost:
                best, cost = np.array([l0, amp]), c
    return best


def _joint(series: Sequence[LawSeries], x0: np.ndarray, max_nfev: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Least squares over the shared shape and each run's α (variable projection); ``(x, (L0, Ã), σ)``."""
    n = len(series)
    lo = np.concatenate([_SHARED_LO, np.full(n, _ALPHA_LO)])
    hi = np.concatenate([_SHARED_HI, np.full(n, _ALPHA_HI)])
    x0 = np.clip(x0, lo, hi)
    sigma = np.maximum(_projected(x0, series, None)[2], 1e-4)
    sizes = [s.y.size for s in series]
    sparsity = lil_matrix((sum(sizes), x0.size), dtype=int)
    row = 0
    for i, m in enumerate(sizes):
        sparsity[row: row + m, :4] = 1
        sparsity[row: row + m, 4 + i] = 1
        row += m
    try:
        res = least_squares(lambda x: _projected(x, series, sigma)[0], x0, bounds=(lo, hi), jac_sparsity=sparsity,
                            x_scale="jac", ftol=1e-4, xtol=1e-6, max_nfev=max_nfev)
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not np.all(np.isfinite(res.x)):
        return None
    _, lin, sig = _projected(res.x, series, None)
    return res.x, lin, np.maximum(sig, 1e-5)


def _laplace(series: Sequence[LawSeries], x: np.ndarray) -> list[DecayShape]:
    """Eight shapes drawn (fixed seed) from the Laplace approximation of the shared parameters."""
    sigma = np.maximum(_projected(x, series, None)[2], 1e-5)
    fun = _projected(x, series, sigma)[0]
    cols = []
    for i in range(4):
        h = 1e-5 * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        cols.append((_projected(up, series, sigma)[0] - _projected(down, series, sigma)[0]) / (2 * h))
    jac = np.column_stack(cols)
    dof = max(fun.size - x.size, 1)
    cov = np.linalg.pinv(jac.T @ jac) * max(float(np.sum(fun**2)) / dof, 1.0)
    draws = np.random.default_rng(0).multivariate_normal(x[:4], cov, size=8, method="eigh")
    return [_to_shape(np.clip(d, _SHARED_LO, _SHARED_HI), "laplace") for d in draws]


def _robust_sd(r: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(r - np.median(r)))) if r.size else float("nan")


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else float("nan")
