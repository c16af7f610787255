"""Accuracy against the proxy across runs: ``p = g + (u − g)·σ(k·(z − z0_run))``, ``z0_run ~ N(μ, τ²)``.

The same proxy value gives about the same accuracy in runs of other sizes and schedules, up to a shift:
slope k and ceiling u are shared, each run has its own shift z0 (empirical Bayes, fitted on every
reference anchor). ``z`` is the loss-like proxy standardised by the references' anchors (median, range).

1. Fit k, u, μ and every z0_run by weighted least squares (weights 1/(SE² + model_error²), as within a
   run), with a weak ridge ``(z0_run − μ)/1`` that keeps runs whose anchors all sit on the floor finite.
2. τ² by DerSimonian–Laird from each run's z0 and its standard error (conditional on k and u), floored at
   ``min_shift_sd``; refit with the ridge at τ.
3. The target's own shift: the exact posterior on a grid, prior ``N(μ, τ²)`` times the likelihood of its
   anchors. With few anchors, or all of them on the floor, it stays near the prior.

g is chance; u is pinned at the ceiling unless the references' accuracy exceeds ``free_ceiling_above``
of it, when it is fitted with the ladder's helper point (proxy 0 → ceiling, at shift μ). Uncertainty of
(k, u, μ) comes from the fit's Laplace approximation (scaled up by χ²/dof when above 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from evalcast.forecast.laws import sigmoid

K_MAX = 50.0
Z_LIM = 50.0
_RIDGE_SD = 1.0
_GRID = 401


@dataclass(frozen=True, eq=False)
class LinkData:
    """One run's anchors on the link: loss-like proxy ``y``, accuracy, its binomial SE and question count."""

    run: str
    y: np.ndarray
    acc: np.ndarray
    se: np.ndarray
    n: np.ndarray


@dataclass(frozen=True, eq=False)
class SharedLink:
    """The fitted cross-run link."""

    k: float
    u: float
    mu: float
    tau: float
    cov: np.ndarray
    """Covariance of ``(k, u, μ)`` (zero row and column for a pinned u)."""
    shifts: dict[str, float]
    g: float
    center: float
    scale: float
    model_error: float
    y_range: tuple[float, float]
    """Proxy range (loss-like units) covered by the references' anchors above the floor."""
    ceiling: float = 1.0

    def z(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=float) - self.center) / self.scale

    def predict(self, y: np.ndarray, z0: np.ndarray, k: np.ndarray | None = None,
                u: np.ndarray | None = None) -> np.ndarray:
        """Accuracy at ``y`` for shifts ``z0`` (broadcast; k and u default to the fit)."""
        k = self.k if k is None else k
        u = self.u if u is None else u
        return self.g + (u - self.g) / (1.0 + np.exp(-np.clip(k * (self.z(y) - z0), -700, 700)))

    def params(self) -> dict[str, float]:
        return {"link_k": self.k, "link_u": self.u, "link_mu": self.mu, "link_tau": self.tau,
                "link_center": self.center, "link_scale": self.scale}


def fit_shared_link(runs: Sequence[LinkData], g: float, ceiling: float, *, model_error: float,
                    free_ceiling_above: float, min_shift_sd: float) -> SharedLink | None:
    """Fit the link over ``runs`` (each with at least one anchor); None when nothing can be fitted."""
    runs = [r for r in runs if r.y.size > 0]
    if not runs:
        return None
    y_all = np.concatenate([r.y for r in runs])
    acc_all = np.concatenate([r.acc for r in runs])
    se_all = np.concatenate([r.se for r in runs])
    if acc_all.size < 3:
        return None
    center, scale = float(np.median(y_all)), float(np.ptp(y_all)) or 1.0
    off_floor = acc_all > g + 2.0 * se_all
    if not np.any(off_floor):
        return None
    y_range = (float(np.min(y_all[off_floor])), float(np.max(y_all[off_floor])))
    z_runs = [(r.y - center) / scale for r in runs]
    w_runs = [1.0 / np.sqrt(r.se**2 + model_error**2) for r in runs]
    u_free = float(np.max(acc_all)) > free_ceiling_above * ceiling
    u_lo = min(float(np.max(acc_all)), ceiling - 1e-6) if u_free else ceiling
    k0, z00 = _start(np.concatenate(z_runs), acc_all, g, ceiling)
    n = len(runs)
    helper_z = (0.0 - center) / scale

    def resid(x: np.ndarray, tau: float) -> np.ndarray:
        k, u, mu, z0 = x[0], x[1], x[2], x[3:]
        parts = [(sigmoid(np.array([k, z0[i], u]), z, g) - r.acc) * w for i, (r, z, w) in
                 enumerate(zip(runs, z_runs, w_runs))]
        parts.append((z0 - mu) / tau)
        if u_free:
            parts.append(np.atleast_1d((sigmoid(np.array([k, mu, u]), np.array([helper_z]), g)[0] - ceiling)
                                       * max(float(np.max(np.concatenate(w_runs))), 1.0)))
        return np.concatenate(parts)

    lo = np.array([-K_MAX, u_lo - (0.0 if u_free else 1e-12), -Z_LIM, *([-Z_LIM] * n)])
    hi = np.array([K_MAX, ceiling + (0.0 if u_free else 1e-12), Z_LIM, *([Z_LIM] * n)])
    x0 = np.clip(np.array([k0, ceiling if not u_free else 0.5 * (u_lo + ceiling), z00, *([z00] * n)]), lo, hi)
    res = _solve(resid, x0, lo, hi, _RIDGE_SD)
    if res is None:
        return None
    tau = max(_dersimonian_laird(res, runs, z_runs, w_runs, g), min_shift_sd)
    res = _solve(resid, res, lo, hi, tau) if tau > 0 else res
    if res is None:
        return None
    fun = resid(res, tau)
    jac = _jacobian(lambda x: resid(x, tau), res, lo, hi)
    dof = max(acc_all.size - (2 + int(u_free)), 1)
    chi2 = float(np.sum(fun[: acc_all.size] ** 2))
    cov = np.linalg.pinv(jac.T @ jac) * max(chi2 / dof, 1.0)
    cov3 = cov[:3, :3].copy()
    if not u_free:
        cov3[1, :] = cov3[:, 1] = 0.0
    shifts = {r.run: float(res[3 + i]) for i, r in enumerate(runs)}
    return SharedLink(float(res[0]), float(res[1]), float(res[2]), float(tau), cov3, shifts, g, center, scale,
                      model_error, y_range, ceiling)


def _solve(resid: object, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, tau: float) -> np.ndarray | None:
    x0 = np.clip(x0, lo, hi)
    try:
        res = least_squares(resid, x0, bounds=(lo, hi), args=(tau,), max_nfev=500)  # type: ignore[arg-type]
    except (ValueError, np.linalg.LinAlgError):
        return None
    return res.x if np.all(np.isfinite(res.x)) else None


def _jacobian(f: object, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Central differences, one-sided at a bound (step 1e-6 relative)."""
    cols = []
    for i in range(x.size):
        h = 1e-6 * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i], down[i] = min(x[i] + h, hi[i]), max(x[i] - h, lo[i])
        width = up[i] - down[i]
        cols.append((f(up) - f(down)) / width if width > 0 else np.zeros_like(f(x)))  # type: ignore[operator]
    return np.column_stack(cols)


def _start(z: np.ndarray, acc: np.ndarray, g: float, u: float) -> tuple[float, float]:
    """Slope and centre of a pooled logit-linear regression (slope −3 at the median if it fails)."""
    q = np.clip((acc - g) / max(u - g, 1e-9), 0.02, 0.98)
    logit = np.log(q / (1 - q))
    if np.ptp(z) > 0:
        slope, icpt = np.polyfit(z, logit, 1, w=np.sqrt(q * (1 - q)))
        if slope != 0 and np.isfinite(slope) and abs(icpt / slope) < Z_LIM:
            return float(np.clip(slope, -K_MAX / 2, K_MAX / 2)), float(-icpt / slope)
    return -3.0, float(np.median(z))


def _dersimonian_laird(x: np.ndarray, runs: Sequence[LinkData], z_runs: list[np.ndarray],
                       w_runs: list[np.ndarray], g: float) -> float:
    """Between-run SD of the shifts from their estimates and conditional standard errors."""
    k, u = x[0], x[1]
    shifts, weights = [], []
    for i, (z, w) in enumerate(zip(z_runs, w_runs)):
        s = 1.0 / (1.0 + np.exp(-np.clip(k * (z - x[3 + i]), -700, 700)))
        info = float(np.sum((w * (u - g) * k * s * (1 - s)) ** 2))
        if info > 1e-12:
            shifts.append(x[3 + i])
            weights.append(info)
    if len(shifts) < 2:
        return 0.0
    sh, wt = np.array(shifts), np.array(weights)
    mean = float(np.sum(wt * sh) / np.sum(wt))
    q = float(np.sum(wt * (sh - mean) ** 2))
    denom = float(np.sum(wt) - np.sum(wt**2) / np.sum(wt))
    return float(np.sqrt(max(0.0, (q - (len(sh) - 1)) / denom))) if denom > 0 else 0.0


@dataclass(frozen=True, eq=False)
class LinkDraws:
    """Link parameters per replicate: slope, ceiling and the target's shift ``(B,)`` each."""

    k: np.ndarray
    u: np.ndarray
    z0: np.ndarray
    z0_mean: float
    z0_sd: float


def target_draws(link: SharedLink, y: np.ndarray, acc_reps: np.ndarray, se: np.ndarray, n_draws: int,
                 rng: np.random.Generator) -> LinkDraws:
    """Draw (k, u, z0_target): (k, u, μ) from the Laplace approximation, then z0 from its exact posterior
    given the target's anchors (``y`` per anchor, replicate accuracies ``(B, J)`` for the question bootstrap)."""
    mean = np.array([link.k, link.u, link.mu])
    theta = rng.multivariate_normal(mean, link.cov, size=n_draws, method="eigh")
    k = np.where(np.sign(theta[:, 0]) == np.sign(link.k), theta[:, 0], link.k)
    u = np.clip(theta[:, 1], link.g + 1e-6, link.ceiling)
    mu = theta[:, 2]
    spread = max(8.0 * np.sqrt(link.tau**2 + link.cov[2, 2]), 1.0)
    grid = np.linspace(link.mu - spread, link.mu + spread, _GRID)
    logp = -0.5 * ((grid[None, :] - mu[:, None]) / max(link.tau, 1e-6)) ** 2
    if y.size:
        z = link.z(y)
        sd = np.sqrt(se**2 + link.model_error**2)
        pred = link.g + (u[:, None, None] - link.g) / (
            1.0 + np.exp(-np.clip(k[:, None, None] * (z[None, None, :] - grid[None, :, None]), -700, 700)))
        reps = acc_reps[:n_draws] if acc_reps.shape[0] >= n_draws else acc_reps[rng.integers(0, acc_reps.shape[0],
                                                                                               n_draws)]
        logp = logp - 0.5 * np.sum(((pred - reps[:, None, :]) / sd[None, None, :]) ** 2, axis=-1)
    post = np.exp(logp - logp.max(axis=1, keepdims=True))
    cdf = np.cumsum(post, axis=1)
    cdf /= cdf[:, -1:]
    pick = np.array([np.searchsorted(c, v) for c, v in zip(cdf, rng.random(n_draws))])
    step = grid[1] - grid[0]
    z0 = grid[np.minimum(pick, _GRID - 1)] + step * (rng.random(n_draws) - 0.5)
    return LinkDraws(k, u, z0, float(np.mean(z0)), float(np.std(z0)))
