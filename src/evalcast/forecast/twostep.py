"""The two-step forecast: proxy ~ compute (step 1 here), accuracy ~ proxy (:mod:`.accuracy`), composed.

Step 1 (``docs/methods.md`` §6). The proxy is turned into a decreasing, positive "loss-like" series
``y = sign·m + offset`` whose direction is learned from its trend over checkpoints, never from its name:
a falling positive series is kept; a rising series bounded in [0, 1] becomes ``1 − m``; anything else
is sign-aligned and shifted so that its floor may lie one observed range below its minimum. The earliest
checkpoints are skipped and ``y = E + A·t1^(−α) − C·t2`` is fitted (power law in compute, or the
LR-annealing law). The composition averages the accuracy links and pools their bootstrap replicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from evalcast.forecast.accuracy import AccuracyPoints, fit_links, sigmoid_bootstrap
from evalcast.forecast.bootstrap import block_residuals, summarise
from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.fit import (
    ALPHA_BOUNDS,
    at_bound,
    fit_proxy_law,
    grid_starts,
    kstep_refit,
    moving_average,
    r_squared,
)
from evalcast.forecast.gates import (
    Reason,
    Refusal,
    check_anchor_extrapolation,
    check_points,
    check_proxy_interval,
    check_r2,
    extrapolation_ratio,
)
from evalcast.forecast.laws import PROXY_PARAMS, proxy_law, proxy_law_jac
from evalcast.forecast.linkerror import law_error, model_error_draws, perturbed
from evalcast.forecast.prepare import Axis
from evalcast.forecast.results import Forecast


def orient(raw: np.ndarray, smooth: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """``(sign, offset)`` making ``sign·m + offset`` positive and falling with compute (see module doc)."""
    ok = np.isfinite(smooth)
    v = smooth[ok]
    rho = spearmanr(x[ok], v).statistic if v.size >= 3 and np.ptp(v) > 0 else -1.0
    rising = bool(np.isfinite(rho) and rho > 0)
    finite_raw = raw[np.isfinite(raw)]
    if not rising and v.min() > 0:
        return 1.0, 0.0
    if rising and finite_raw.min() >= 0.0 and finite_raw.max() <= 1.0 and v.max() < 1.0:
        return -1.0, 1.0
    sign = -1.0 if rising else 1.0
    span = float(np.ptp(v)) or 1.0
    return sign, span - float(np.min(sign * v))


@dataclass(frozen=True, eq=False)
class ProxyFit:
    """A fitted proxy~compute law, with the data it saw."""

    name: str
    raw: np.ndarray
    sign: float
    offset: float
    y: np.ndarray
    """Smoothed loss-like series per checkpoint (NaN where the proxy is missing)."""
    window: np.ndarray
    """Checkpoint indices of the fit."""
    t1_ref: float
    theta: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    r2: float
    flags: tuple[str, ...]

    def predict(self, t1: np.ndarray, t2: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        return proxy_law(self.theta if theta is None else theta, t1 / self.t1_ref, t2)

    def at(self, axis: Axis, idx: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        """``y`` at checkpoints ``idx``: the fitted law inside the window, the smoothed data before it."""
        inside = idx >= self.window[0]
        law = self.predict(axis.t1[idx], axis.t2[idx], theta)
        return np.where(inside, law, self.y[idx])

    def params(self) -> dict[str, float]:
        return {**dict(zip(PROXY_PARAMS, map(float, self.theta))), "r2": self.r2, "sign": self.sign,
                "offset": self.offset}


def fit_proxy(name: str, raw: np.ndarray, axis: Axis, cfg: ForecastConfig, polish: bool = True) -> ProxyFit:
    """Step 1; raises :class:`Refusal` when a gate fails.

    The law is fitted to the raw (unsmoothed) series: it is itself a smoother, while a moving average
    biases a curved series and, on a simulated cosine run with no noise at all, hid the annealing term
    completely (C fitted 0 instead of 0.12; final-proxy error 0.10 instead of 0.00). The moving average
    only decides the direction and gives the proxy at anchors before the fit window; R² is in-window on
    the raw series, so it measures the trend against checkpoint noise.
    """
    gates = cfg.gates
    smooth = moving_average(raw, cfg.smooth_window)
    finite = np.flatnonzero(np.isfinite(raw))
    if finite.size < gates.min_points:
        raise Refusal(Reason.TOO_FEW_POINTS, f"proxy '{name}' has {finite.size} finite values; at least "
                      f"{gates.min_points} are needed")
    sign, offset = orient(raw, smooth, axis.x)
    y_raw, y = sign * raw + offset, sign * smooth + offset
    window = finite[int(np.floor(cfg.skip_fraction * finite.size)):]
    window = window[y_raw[window] > 0]
    refusal = check_points(axis.x[window], gates)
    if refusal:
        raise refusal
    t1 = axis.t1[window] / axis.t1[window[0]]
    t2 = axis.t2[window]
    flags: list[str] = []
    fit_c = axis.law == "annealing" and axis.fit_c
    if fit_c and float(np.max(t2)) < 1e-6:
        if gates.refuse_unobserved_annealing:
            raise Refusal(Reason.ANNEALING_UNOBSERVED, "the learning rate decays only after the checkpoints seen so "
                          "far (e.g. a WSD cool-down to come): the loss drop it brings cannot be estimated yet")
        fit_c = False
        flags.append("annealing_unobserved")
    law = fit_proxy_law(t1, t2, y_raw[window], fit_c=fit_c, delta=cfg.huber_delta, polish=polish)
    if law is None:
        raise Refusal(Reason.FIT_FAILED, f"the {axis.law} law fit of '{name}' found no finite solution")
    if not law.converged:
        raise Refusal(Reason.FIT_FAILED, f"the {axis.law} law fit of '{name}' did not converge within its iteration "
                      "limit")
    alpha = float(law.theta[2])
    if at_bound(alpha, *ALPHA_BOUNDS, gates.bound_rtol):
        raise Refusal(Reason.EXPONENT_AT_BOUND, f"the exponent of '{name}' sits at its bound (α={alpha:.3g} of "
                      f"[{ALPHA_BOUNDS[0]:g}, {ALPHA_BOUNDS[1]:g}]): the curvature is not identified in this window")
    if law.theta[0] >= law.upper[0] * (1 - gates.bound_rtol):
        flags.append("asymptote_at_min")
    r2 = r_squared(y_raw[window], proxy_law(law.theta, t1, t2))
    refusal = check_r2(r2, gates, f"'{name}'")
    if refusal:
        raise refusal
    pf = ProxyFit(name, raw, sign, offset, y, window, float(axis.t1[window[0]]), law.theta, law.lower,
                  law.upper, r2, tuple(flags))
    if not np.all(pf.predict(axis.t1_grid, axis.t2_grid) > 0):
        raise Refusal(Reason.FIT_FAILED, f"the {axis.law} law of '{name}' reaches a non-positive loss-like value "
                      "before the end of the budget (the annealing term overshoots)")
    return pf


def proxy_bootstrap(pf: ProxyFit, axis: Axis, cfg: ForecastConfig,
                    rng: np.random.Generator) -> np.ndarray:
    """``(B, 4)`` law parameters refitted to residual-block resamples (rows of NaN where a refit failed)."""
    w = pf.window
    t1w, t2w = axis.t1[w] / pf.t1_ref, axis.t2[w]
    fitted = proxy_law(pf.theta, t1w, t2w)
    resid = np.log(pf.sign * pf.raw[w] + pf.offset) - np.log(fitted)
    reps = fitted[None, :] * np.exp(block_residuals(resid - np.median(resid), cfg.n_bootstrap, rng))
    lower, upper = pf.lower.copy(), pf.upper.copy()
    upper[0] = max(upper[0], float(np.max(np.min(reps, axis=1))))
    starts, _ = grid_starts(t1w, t2w, reps, fitted, lower, upper, bool(upper[3] > 0))
    return kstep_refit(lambda th: proxy_law(th, t1w, t2w), lambda th: proxy_law_jac(th, t1w, t2w), starts,
                       reps, np.ones_like(reps), lower, upper, steps=cfg.kstep, log_residuals=True,
                       delta=cfg.huber_delta)


def twostep_forecast(method: str, name: str, raw: np.ndarray, axis: Axis, pts: AccuracyPoints, g: float,
                     u: float, cfg: ForecastConfig, rng: np.random.Generator
                     ) -> tuple[Forecast, ProxyFit | None, tuple[np.ndarray, np.ndarray] | None]:
    """Fit both steps, bootstrap them and gate the result.

    Also returns the proxy fit and its replicates (``y`` at every checkpoint ``(B, n)`` and on the grid
    ``(B, G)``), which the cluster forecasts reuse.
    """
    try:
        pf = fit_proxy(name, raw, axis, cfg)
        y_pts = pf.at(axis, pts.index)
        keep = np.isfinite(y_pts)
        pts_k = _subset(pts, keep)
        k = pts_k.n_anchors or pts_k.acc.size
        refusal = check_anchor_extrapolation(float(pf.predict(axis.t1_grid, axis.t2_grid)[-1]), y_pts[keep][:k],
                                             pts_k.acc[:k], pts_k.se[:k], g, cfg.gates)
        if refusal:
            raise refusal
        center, scale = proxy_scale(pf)
        fits = fit_links(y_pts[keep], pts_k, g, u, center, scale, cfg)
    except Refusal as r:
        return Forecast(method, "refused", r.reason.value, r.message), None, None
    y_grid = pf.predict(axis.t1_grid, axis.t2_grid)
    point = np.mean([af.predict(y_grid) for af in fits], axis=0)
    theta_p = proxy_bootstrap(pf, axis, cfg, rng)
    every = np.arange(axis.x.size)
    series = np.where(every[None, :] >= pf.window[0], pf.predict(axis.t1, axis.t2, theta_p), pf.y[None, :])
    grid_reps = pf.predict(axis.t1_grid, axis.t2_grid, theta_p)
    ends = grid_reps[np.isfinite(grid_reps[:, -1]), -1]
    proxy_lo, proxy_hi = (np.percentile(ends, [10.0, 90.0]) if ends.size else (np.nan, np.nan))
    proxy_params = {"proxy_final": float(y_grid[-1]), "proxy_lo80": float(proxy_lo), "proxy_hi80": float(proxy_hi)}
    refusal = check_proxy_interval(float(proxy_lo), float(proxy_hi), float(np.ptp(pf.y[pf.window])), cfg.gates)
    if refusal:
        return (Forecast(method, "refused", refusal.reason.value, refusal.message, params={**pf.params(),
                                                                                       **proxy_params}), pf, None)
    y_pts_reps = series[:, pts_k.index]
    k = pts_k.n_anchors or pts_k.acc.size
    ratio = extrapolation_ratio(float(y_grid[-1]), y_pts[keep][:k], pts_k.acc[:k], pts_k.se[:k], g)[0]
    reach = min(1.0, ratio) if np.isfinite(ratio) else 1.0
    reps = np.concatenate([af.predict(grid_reps, perturbed(af, sigmoid_bootstrap(
        af, y_pts_reps, pts_k.replicates, pts_k.weight, cfg), reach * model_error_draws(
        af, y_pts[keep], pts_k.weight, law_error(af, y_pts[keep][:k], pts_k.acc[:k], pts_k.se[:k], cfg.model_error),
        y_pts_reps.shape[0], rng))) for af in fits])
    flags = list(pf.flags) + (["ceiling_free"] if any(af.helper for af in fits) else []) + [
        f"law:{axis.law}", f"source:{pts.source}", "links:" + "+".join(af.link for af in fits)]
    params = {**pf.params(), **proxy_params, **{k: v for af in fits for k, v in af.params().items()}}
    return summarise(method, axis.grid, point, reps, g, u, cfg, params, flags), pf, (series, grid_reps)


def proxy_scale(pf: ProxyFit) -> tuple[float, float]:
    """Centre and scale standardising ``y`` for the sigmoid: median and range of the fitted window."""
    yw = pf.y[pf.window]
    return float(np.median(yw)), float(np.ptp(yw)) or 1.0


def _subset(pts: AccuracyPoints, keep: np.ndarray) -> AccuracyPoints:
    n_anchors = int(np.sum(keep[: pts.n_anchors]))
    return AccuracyPoints(pts.index[keep], pts.acc[keep], pts.se[keep], pts.weight[keep], pts.replicates[:, keep],
                          n_anchors, pts.source)
