"""Baselines, in the same form as evalcast's forecast (``docs/methods.md`` §6).

* ``compute_sigmoid``: ``g + (u − g)·σ(k·(log C − c0))`` fitted on the anchors.
* ``compute_power``: Krajewski et al. 2025, ``−log((acc − g)/(u − g)) = A·(C/C0)^(−α)`` on the anchors.
* ``loss_twostep``: the two-step pipeline with a loss series (val loss, task BPB, train loss) in place of
  the proxy, ladder-style.
* ``last_value``: the last anchor's accuracy, with its binomial interval (no extrapolation at all).
"""

from __future__ import annotations

import numpy as np

from evalcast.forecast.accuracy import AccuracyPoints, fit_sigmoid, sigmoid_bootstrap
from evalcast.forecast.bootstrap import summarise
from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.fit import ALPHA_BOUNDS, at_bound, fit_curve, kstep_refit
from evalcast.forecast.gates import Reason, Refusal, check_anchors
from evalcast.forecast.inputs import LOSS_PREFERENCE
from evalcast.forecast.laws import neg_log_power, neg_log_power_jac, sigmoid
from evalcast.forecast.prepare import Axis, as_series
from evalcast.forecast.results import Forecast, ForecastCurve, refused
from evalcast.forecast.twostep import twostep_forecast


def compute_sigmoid(axis: Axis, pts: AccuracyPoints, g: float, u: float, cfg: ForecastConfig) -> Forecast:
    """Accuracy as a sigmoid in log compute, fitted on the anchors."""
    method = "compute_sigmoid"
    refusal = check_anchors(pts.acc, pts.se, cfg.gates)
    if refusal:
        return refused(method, refusal.reason.value, refusal.message)
    logx = np.log(axis.x[pts.index])
    center, scale = float(np.median(logx)), float(np.ptp(logx)) or 1.0
    try:
        af = fit_sigmoid(logx, pts, g, u, center, scale, cfg, what="accuracy~log-compute", helper=False)
    except Refusal as r:
        return refused(method, r.reason.value, r.message)
    logx_reps = np.broadcast_to(logx, pts.replicates.shape)
    theta = sigmoid_bootstrap(af, logx_reps, pts.replicates, pts.weight, cfg)
    lg = np.log(axis.grid)
    reps = sigmoid(theta, (lg[None, :] - center) / scale, g)
    return summarise(method, axis.grid, af.predict(lg), reps, g, u, cfg, af.params(), [])


def compute_power(axis: Axis, pts: AccuracyPoints, g: float, u: float, cfg: ForecastConfig) -> Forecast:
    """Krajewski et al.'s power law in log accuracy, fitted on the anchors."""
    method = "compute_power"
    refusal = check_anchors(pts.acc, pts.se, cfg.gates)
    if refusal:
        return refused(method, refusal.reason.value, refusal.message)
    x0 = float(axis.x[pts.index[0]])
    t = axis.x[pts.index] / x0
    q0 = np.clip((pts.acc[0] - g) / max(u - g, 1e-9), 1e-3, 0.999)
    inits = [(float(-np.log(q0)), a) for a in (0.2, 0.5, 1.0)]
    lower, upper = np.array([0.0, ALPHA_BOUNDS[0]]), np.array([1e3, ALPHA_BOUNDS[1]])
    best = fit_curve(lambda tv, a, al: neg_log_power(np.array([a, al]), tv, g, u), t, pts.acc, pts.weight**-0.5, inits,
                     bounds=(lower, upper), jac=lambda tv, a, al: neg_log_power_jac(np.array([a, al]), tv, g, u))
    if best is None:
        return refused(method, Reason.FIT_FAILED.value, "the log-accuracy power law did not converge")
    theta = best[0]
    params = {"A": float(theta[0]), "alpha": float(theta[1]), "x0": x0}
    if at_bound(float(theta[1]), *ALPHA_BOUNDS, cfg.gates.bound_rtol):
        return refused(method, Reason.EXPONENT_AT_BOUND.value, f"the exponent sits at its bound "
                       f"(α={theta[1]:.3g}): the anchors do not identify the curvature", params=params)
    tb = np.broadcast_to(t, pts.replicates.shape)
    th = kstep_refit(lambda p: neg_log_power(p, tb, g, u), lambda p: neg_log_power_jac(p, tb, g, u), theta,
                     pts.replicates, np.broadcast_to(pts.weight, tb.shape), lower, upper, steps=cfg.kstep)
    tg = axis.grid / x0
    return summarise(method, axis.grid, neg_log_power(theta, tg, g, u), neg_log_power(th, tg, g, u), g, u, cfg,
                     params, [])


def loss_twostep(axis: Axis, losses: dict[str, object], pts: AccuracyPoints, g: float, u: float,
                 cfg: ForecastConfig, rng: np.random.Generator) -> Forecast:
    """The two-step pipeline on the preferred loss series."""
    method = "loss_twostep"
    for name in LOSS_PREFERENCE + tuple(sorted(set(losses) - set(LOSS_PREFERENCE))):
        series = as_series(losses[name], axis.x.size) if name in losses else None
        if series is not None and np.sum(np.isfinite(series)) > 0:
            fc, _, _ = twostep_forecast(method, name, series, axis, pts, g, u, cfg, rng)
            return Forecast(fc.method, fc.status, fc.reason, fc.message, fc.final, fc.interval80, fc.interval95,
                            fc.curve, fc.params, (*fc.flags, f"loss:{name}"))
    return refused(method, Reason.NO_LOSS.value, "no loss series was given (val_loss, task_bpb or train_loss)")


def last_value(axis: Axis, pts: AccuracyPoints) -> Forecast:
    """The last anchor's accuracy carried to the end, with its binomial sampling interval."""
    method = "last_value"
    if pts.n_anchors == 0:
        return refused(method, Reason.TOO_FEW_ANCHORS.value, "no anchor evaluation yet")
    a, se = float(pts.acc[pts.n_anchors - 1]), float(pts.se[pts.n_anchors - 1])
    i80 = (max(0.0, a - 1.2816 * se), min(1.0, a + 1.2816 * se))
    i95 = (max(0.0, a - 1.96 * se), min(1.0, a + 1.96 * se))
    n = axis.grid.size
    curve = ForecastCurve(tuple(map(float, axis.grid)), (a,) * n, (i80[0],) * n, (i80[1],) * n, (i95[0],) * n,
                          (i95[1],) * n)
    return Forecast(method, "ok", "", "last observed anchor accuracy; no extrapolation", final=a, interval80=i80,
                    interval95=i95, curve=curve, params={"index": float(pts.index[pts.n_anchors - 1])},
                    flags=("no_extrapolation",))
