"""Robust fitting helpers: smoothing, the proxy-law fit, bounded curve fits, and batched refits.

* :func:`fit_proxy_law` — Huber (δ = 1e−3) on log residuals, bounded L-BFGS-B. Its
  multi-start grid is a variable projection: for each α on a log grid the linear parameters
  ``(E, A, C)`` are solved exactly by box-constrained least squares on relative residuals
  (:func:`bounded_lstsq`), and the best grid points are polished with L-BFGS-B. This is global in α,
  and cheaper than a blind multi-start L-BFGS-B grid.
* :func:`fit_curve` — ``curve_fit`` over several initialisations; an ``OptimizeWarning`` (covariance not
  estimable) or a ``RuntimeError`` counts as a failed start.
* :func:`kstep_refit` — the k-step bootstrap (Andrews 2002, Econometrica 70:119): each replicate takes
  a few damped Gauss–Newton/IRLS steps from the full-sample estimate, vectorised over replicates, at a
  small fraction of the cost of a full refit per replicate.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit, minimize

from evalcast.forecast.laws import proxy_law, proxy_law_jac

ALPHA_BOUNDS = (1e-3, 3.0)
_MAXITER = 500
_ALPHA_GRID = np.concatenate([[1e-3], np.geomspace(0.01, 3.0, 24)])

BatchFn = Callable[[np.ndarray], np.ndarray]


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average whose window shrinks symmetrically at the ends (no lag at the last point).

    NaNs are ignored inside a window; a window with no finite value gives NaN.
    """
    v = np.asarray(values, dtype=float)
    half = max(int(window), 1) // 2
    if half == 0 or v.size == 0:
        return v.copy()
    ok = np.isfinite(v)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(v.size)
    h = np.minimum(np.minimum(idx, v.size - 1 - idx), half)
    lo, hi = idx - h, idx + h + 1
    cnt = ccnt[hi] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (csum[hi] - csum[lo]) / np.maximum(cnt, 1), np.nan)


def r_squared(y: np.ndarray, fitted: np.ndarray) -> float:
    """Coefficient of determination of ``fitted`` for ``y`` (NaN when ``y`` is constant)."""
    ss_tot = float(np.sum((y - np.mean(y)) ** 2))
    if ss_tot <= 0:
        return float("nan")
    return 1.0 - float(np.sum((y - fitted) ** 2)) / ss_tot


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss ``0.5·r²`` inside ``|r| ≤ δ``, ``δ·|r| − 0.5·δ²`` outside."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * a - 0.5 * delta * delta)


@dataclass(frozen=True)
class LawFit:
    """Result of :func:`fit_proxy_law`: parameters ``(E, A, alpha, C)``, objective and convergence."""

    theta: np.ndarray
    objective: float
    converged: bool
    lower: np.ndarray
    upper: np.ndarray


def proxy_bounds(y: np.ndarray, fit_c: bool) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``(E, A, alpha, C)``: E ∈ [0, min y], A ≥ 0, α ∈ [1e−3, 3], C ∈ [0, max y] or 0."""
    lo = np.array([0.0, 0.0, ALPHA_BOUNDS[0], 0.0])
    hi = np.array([float(np.min(y)), 1e6 * float(np.max(y)), ALPHA_BOUNDS[1], float(np.max(y)) if fit_c else 0.0])
    return lo, hi


def _huber_log_objective(theta: np.ndarray, t1: np.ndarray, t2: np.ndarray, logy: np.ndarray,
                         delta: float) -> tuple[float, np.ndarray]:
    pred = proxy_law(theta, t1, t2)
    if np.any(pred <= 0):
        return 1e12, np.zeros(4)
    r = np.log(pred) - logy
    grad = (np.clip(r, -delta, delta) / pred) @ proxy_law_jac(theta, t1, t2)
    return float(np.sum(huber(r, delta))) / delta, grad / delta


def bounded_lstsq(design: np.ndarray, targets: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact box-constrained least squares for a few parameters, batched over designs and targets.

    ``design`` is ``(G, n, p)``, ``targets`` ``(B, n)``. The optimum of a convex quadratic over a box is
    the unconstrained optimum of one of its faces, so every face (each parameter free, at its lower or
    at its finite upper bound) is solved and the best feasible solution kept: at most 3^p tiny solves
    per design, all vectorised (much cheaper than ``scipy.optimize.lsq_linear`` design by design).
    Returns solutions ``(B, G, p)`` and costs ``0.5·|design·x − target|²`` ``(B, G)``.
    """
    g, _, p = design.shape
    b = targets.shape[0]
    gram = np.einsum("gni,gnj->gij", design, design)
    dty = np.einsum("gnp,bn->bgp", design, targets)
    yty = np.sum(targets**2, axis=1)[:, None]
    best_x, best_cost = np.full((b, g, p), np.nan), np.full((b, g), np.inf)
    states = [[0] + [s for s, bound in ((1, lo[i]), (2, hi[i])) if np.isfinite(bound)] for i in range(p)]
    for face in itertools.product(*states):
        face_a = np.array(face)
        fixed = np.where(face_a == 1, lo, np.where(face_a == 2, hi, 0.0))
        free = face_a == 0
        x = np.broadcast_to(fixed, (b, g, p)).copy()
        if free.any():
            k = int(free.sum())
            inv = np.linalg.inv(gram[:, free][:, :, free] + 1e-12 * np.eye(k))
            rhs = dty[:, :, free] - (gram[:, free] @ fixed)[None, :, :]
            x[:, :, free] = np.einsum("gij,bgj->bgi", inv, rhs)
        ok = np.all((x >= lo - 1e-12) & (x <= hi + 1e-12), axis=2)
        cost = 0.5 * (yty - 2 * np.sum(x * dty, axis=2) + np.einsum("bgi,gij,bgj->bg", x, gram, x))
        better = ok & (cost < best_cost)
        best_x[better], best_cost[better] = x[better], cost[better]
    return best_x, np.maximum(best_cost, 0.0)


def grid_starts(t1: np.ndarray, t2: np.ndarray, y: np.ndarray, scale: np.ndarray, lo: np.ndarray,
                hi: np.ndarray, fit_c: bool) -> tuple[np.ndarray, np.ndarray]:
    """Variable projection over the α grid for series ``y`` ``(B, n)``: per series, the α of least cost
    with ``(E, A, C)`` solved exactly on residuals relative to ``scale`` ``(n,)``.

    Returns parameters ``(B, 4)`` and their costs ``(B,)`` (NaN / inf where no grid point was feasible).
    """
    lin = [0, 1, 3] if fit_c else [0, 1]
    cols = np.stack([np.ones((_ALPHA_GRID.size, t1.size)), t1[None, :] ** -_ALPHA_GRID[:, None],
                     np.broadcast_to(-t2, (_ALPHA_GRID.size, t1.size))], axis=-1)[..., : len(lin)]
    sol, cost = bounded_lstsq(cols / scale[None, :, None], y / scale[None, :], lo[lin], hi[lin])
    best = np.argmin(cost, axis=1)
    rows = np.arange(y.shape[0])
    theta = np.zeros((y.shape[0], 4))
    theta[:, lin], theta[:, 2] = sol[rows, best], _ALPHA_GRID[best]
    return theta, cost[rows, best]


def fit_proxy_law(t1: np.ndarray, t2: np.ndarray, y: np.ndarray, *, fit_c: bool, delta: float = 1e-3,
                  polish: bool = True) -> LawFit | None:
    """Fit ``y = E + A·t1^(−α) − C·t2`` (``y > 0``, ``t1 ≥ 1``); None when nothing finite was found.

    ``polish=False`` keeps the grid solution (least squares on relative residuals, α on the grid): the
    proxy backtest uses it, where only the ranking of proxies matters.
    """
    lo, hi = proxy_bounds(y, fit_c)
    start, cost = grid_starts(t1, t2, y[None, :], y, lo, hi, fit_c)
    if not np.isfinite(cost[0]):
        return None
    theta0 = start[0]
    if not polish:
        return LawFit(theta=theta0, objective=float(cost[0]), converged=True, lower=lo, upper=hi)
    logy = np.log(y)
    obj0, _ = _huber_log_objective(theta0, t1, t2, logy, delta)
    res = minimize(_huber_log_objective, theta0, args=(t1, t2, logy, delta), jac=True, method="L-BFGS-B",
                   bounds=list(zip(lo, hi)), options={"maxiter": _MAXITER})
    theta, obj = (res.x, float(res.fun)) if res.fun <= obj0 else (theta0, obj0)
    if not np.all(np.isfinite(theta)) or obj >= 1e12:
        return None
    # L-BFGS-B often ends "abnormally" in a line search at the kink of the Huber loss, at the optimum:
    # only running out of iterations counts as not converged.
    return LawFit(theta=np.clip(theta, lo, hi), objective=obj, converged=bool(res.success) or res.nit < _MAXITER,
                  lower=lo, upper=hi)


def at_bound(value: float, lo: float, hi: float, rtol: float) -> bool:
    """True when ``value`` sits within ``rtol`` (relative to the bound, or to the width) of ``lo``/``hi``."""
    tol_lo = rtol * max(abs(lo), (hi - lo) * 1e-3)
    tol_hi = rtol * max(abs(hi), (hi - lo) * 1e-3)
    return value <= lo + tol_lo or value >= hi - tol_hi


def fit_curve(f: Callable[..., np.ndarray], x: np.ndarray, y: np.ndarray, sigma: np.ndarray,
              inits: Sequence[Sequence[float]], bounds: tuple[Sequence[float], Sequence[float]] | None = None,
              jac: Callable[..., np.ndarray] | None = None) -> tuple[np.ndarray, float] | None:
    """Weighted ``curve_fit`` over several inits; returns ``(params, χ²)`` of the best clean fit or None.

    Without ``bounds`` the Levenberg–Marquardt method is used (much faster than the bounded trust-region
    one); callers then check the result against their own limits.
    """
    best: tuple[np.ndarray, float] | None = None
    for p0 in inits:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                kwargs = {"bounds": bounds} if bounds is not None else {"method": "lm", "maxfev": 2000}
                popt, _ = curve_fit(f, x, y, p0=list(p0), sigma=sigma, absolute_sigma=True, jac=jac, **kwargs)
            except (OptimizeWarning, RuntimeError, ValueError, FloatingPointError, np.linalg.LinAlgError):
                continue
        if not np.all(np.isfinite(popt)):
            continue
        chi2 = float(np.sum(((f(x, *popt) - y) / sigma) ** 2))
        if np.isfinite(chi2) and (best is None or chi2 < best[1]):
            best = (np.asarray(popt, dtype=float), chi2)
    return best


def kstep_refit(predict: BatchFn, jacobian: BatchFn, theta0: np.ndarray, y: np.ndarray, weights: np.ndarray,
                lower: np.ndarray, upper: np.ndarray, *, steps: int = 6, log_residuals: bool = False,
                delta: float | None = None, damping: float = 1e-3) -> np.ndarray:
    """k-step bootstrap refits of ``B`` replicates at once; returns ``(B, p)`` parameters.

    ``predict(theta (B, p)) -> (B, n)``, ``jacobian(theta) -> (B, n, p)``; ``y`` and ``weights`` are
    ``(B, n)`` (weights 0 drop a point). Residuals are ``pred − y`` or ``log pred − log y``; with ``delta``
    the Huber loss is minimised by iteratively reweighted steps. Each step is damped (Levenberg), projected
    on the bounds and backtracked (full, ½, ¼ or no step, whichever lowers the objective). Parameters with
    ``lower == upper`` stay fixed. Replicates whose objective is not finite come back as NaN.
    """
    theta = np.broadcast_to(np.asarray(theta0, dtype=float), (y.shape[0], len(lower))).copy()
    free = upper > lower
    logy = np.log(np.where(y > 0, y, np.nan)) if log_residuals else y

    def residual(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pred = predict(th)
        if log_residuals:
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(pred > 0, np.log(np.where(pred > 0, pred, 1.0)) - logy, np.nan), pred
        return pred - y, pred

    def objective(r: np.ndarray) -> np.ndarray:
        loss = huber(r, delta) if delta is not None else 0.5 * r * r
        with np.errstate(invalid="ignore"):
            out = np.sum(np.where(weights > 0, weights * loss, 0.0), axis=1)
        return np.where(np.isfinite(out), out, np.inf)

    r, pred = residual(theta)
    cost = objective(r)
    eye = np.eye(len(lower))
    for _ in range(steps):
        jac = jacobian(theta)
        if log_residuals:
            jac = jac / np.where(pred > 0, pred, np.nan)[..., None]
        irls = np.ones_like(r) if delta is None else np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        omega = np.where(np.isfinite(r) & (weights > 0), weights * irls, 0.0)
        jac = np.where(np.isfinite(jac), jac, 0.0) * free
        rr = np.where(np.isfinite(r), r, 0.0)
        hess = np.einsum("bnp,bn,bnq->bpq", jac, omega, jac)
        grad = np.einsum("bnp,bn,bn->bp", jac, omega, rr)
        diag = np.einsum("bpp->bp", hess)
        hess = hess + (damping * diag + 1e-12 * (1.0 + diag.max(axis=1, keepdims=True)))[..., None] * eye
        hess = np.where(free[:, None] & free[None, :], hess, eye)
        try:
            step = -np.linalg.solve(hess, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        best_theta, best_cost, best_r, best_pred = theta, cost, r, pred
        for scale in (1.0, 0.5, 0.25):
            trial = np.clip(theta + scale * np.where(np.isfinite(step), step, 0.0), lower, upper)
            tr, tp = residual(trial)
            tc = objective(tr)
            better = tc < best_cost
            best_theta = np.where(better[:, None], trial, best_theta)
            best_r = np.where(better[:, None], tr, best_r)
            best_pred = np.where(better[:, None], tp, best_pred)
            best_cost = np.where(better, tc, best_cost)
        theta, cost, r, pred = best_theta, best_cost, best_r, best_pred
    return np.where(np.isfinite(cost)[:, None], theta, np.nan)
