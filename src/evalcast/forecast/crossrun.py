"""The forecast of one run from the references' proxy model: proxy law, link, draws and intervals.

:func:`forecast_core` fits the target's ``(L0, Ã, α)`` under the transferred decay shape and draws
replicates of everything uncertain, each replicate carrying: the proxy's checkpoint noise (refit), the
prior on α, the spread of transferred shapes, a resample of the anchors' questions, the link's (k, u, μ)
and the target's own shift z0 from its posterior. :func:`interval_forecast` adds the binomial noise of the
final measurement, applies the conformal correction for the current budget fraction and gates the result.
The same two functions forecast a reference left out of the others, so the conformal scores are made
exactly like the forecasts they correct.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalcast.forecast.bootstrap import anchor_replicates, question_counts
from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.fit import moving_average
from evalcast.forecast.gates import (
    Reason,
    Refusal,
    check_bootstrap,
    check_interval,
    check_link_extrapolation,
    check_monotone,
)
from evalcast.forecast.link import LinkDraws, target_draws
from evalcast.forecast.multipower import schedule_terms
from evalcast.forecast.refdata import ProxyModel, RunData, run_proxy
from evalcast.forecast.results import Forecast, ForecastCurve
from evalcast.forecast.transfer import TransferFit, fit_transfer

_Z80, _Z95 = 1.2816, 1.96


@dataclass(frozen=True, eq=False)
class CoreDraws:
    """Replicate accuracy curves on the target's grid ``(B, G)`` (noise-free) and what made them."""

    curves: np.ndarray
    y_end: float
    y_end_draws: np.ndarray
    link: LinkDraws
    law: TransferFit
    n_anchors: int


def forecast_core(target: RunData, model: ProxyModel, cfg: ForecastConfig, n_draws: int,
                  rng: np.random.Generator) -> CoreDraws:
    """Draws of the target's accuracy along its grid; raises :class:`Refusal` when it cannot be fitted."""
    rc = cfg.references
    rp = run_proxy(target, model.proxy, model.kind, cfg)
    if rp is None or target.lr is None:
        raise Refusal(Reason.NO_PROXY, f"this run has no '{model.proxy}' series or no LR schedule")
    if rp.fit_idx.size < rc.min_target_points:
        raise Refusal(Reason.TOO_FEW_POINTS, f"{rp.fit_idx.size} post-warm-up checkpoints of '{model.proxy}'; at "
                      f"least {rc.min_target_points} are needed to fit L0, A and α")
    n = target.x.size
    fit_terms = schedule_terms(target.lr, target.step[rp.fit_idx], rc.schedule_blocks)
    pred_terms = schedule_terms(target.lr, np.concatenate([target.step, target.grid_steps]), rc.schedule_blocks)
    shared = model.shared
    if pred_terms.decays and shared is None:
        raise Refusal(Reason.ANNEALING_UNOBSERVED, "no reference run decayed its learning rate far enough to "
                      "measure the drop a decay brings, and this run's schedule decays")
    law = fit_transfer(rp.y[rp.fit_idx], fit_terms, pred_terms, shared.shape if shared else None,
                       shared.spread if shared else (), shared.spread_scale if shared else 1.0, model.prior,
                       model.sigma, n_draws, rng)
    if law is None:
        raise Refusal(Reason.FIT_FAILED, f"the transferred law found no fit to '{model.proxy}'")
    a = target.anchors
    after = target.step[a.index] > target.warmup_end
    in_law = a.index >= rp.fit_idx[0]
    y_anchor = np.where(in_law, law.point[a.index], moving_average(rp.y, cfg.smooth_window)[a.index])
    keep = after & np.isfinite(y_anchor)
    sub = a.subset(keep)
    counts = (question_counts(len(sub.qids), n_draws, rng) if sub.per_question is not None and sub.size else None)
    reps = anchor_replicates(sub, counts, n_draws, rng) if sub.size else np.zeros((n_draws, 0))
    draws = target_draws(model.link, y_anchor[keep], reps, sub.se, n_draws, rng)
    grid_y = law.replicates[:, n:]
    curves = model.link.predict(grid_y, draws.z0[:, None], draws.k[:, None], draws.u[:, None])
    y_end = float(law.point[-1])
    return CoreDraws(curves, y_end, law.replicates[:, -1], draws, law, int(sub.size))


@dataclass(frozen=True)
class Correction:
    """Additive widening of the 80% and 95% intervals from leave-one-run-out misses (NaN: none)."""

    q80: float
    q95: float
    n_scores: int
    fraction: float


def measured(curves: np.ndarray, n_questions: int, rng: np.random.Generator) -> np.ndarray:
    """Replicate values as one evaluation on ``n_questions`` questions would measure them."""
    p = np.clip(np.where(np.isfinite(curves), curves, 0.0), 0.0, 1.0)
    return np.where(np.isfinite(curves), rng.binomial(n_questions, p) / n_questions, np.nan)


def interval_forecast(target: RunData, model: ProxyModel, core: CoreDraws, correction: Correction | None,
                      g: float, u: float, cfg: ForecastConfig, rng: np.random.Generator,
                      method: str = "evalcast") -> Forecast:
    """Point, conformally corrected intervals and gates for a core's draws."""
    rc = cfg.references
    ok = np.all(np.isfinite(core.curves), axis=1)
    params = {**model.link.params(), "proxy_final": core.y_end, "alpha": core.law.alpha, "L0": core.law.l0,
              "z0_target": core.link.z0_mean, "z0_target_sd": core.link.z0_sd, "sigma": model.sigma,
              "alpha_prior": model.prior.mean, "alpha_prior_sd": model.prior.sd}
    if model.shared is not None:
        sh = model.shared.shape
        params.update({"C": sh.C, "beta": sh.beta, "gamma": sh.gamma, "drop_ratio": sh.drop_ratio})
    flags = [f"references:{len(model.runs)}", f"proxy_scale:{model.kind}", f"anchors_used:{core.n_anchors}"]
    lo_y, hi_y = model.link.y_range
    for refusal in (check_bootstrap(float(np.mean(ok)) if ok.size else 0.0, cfg.gates),
                    check_link_extrapolation(core.y_end, lo_y, hi_y, cfg.gates, "the references' anchors off the "
                                             "floor")):
        if refusal:
            return Forecast(method, "refused", refusal.reason.value, refusal.message, params=params, flags=tuple(flags))
    curves = core.curves[ok]
    point = np.median(curves, axis=0)
    n_q = int(np.max(target.anchors.n)) if target.anchors.size else 0
    sample = measured(curves, n_q, rng) if rc.measurement_noise and n_q > 0 else curves
    q = np.percentile(sample, [10.0, 90.0, 2.5, 97.5], axis=0)
    x = target.grid
    ramp = np.clip((x - target.x[-1]) / max(target.x_end - target.x[-1], 1e-300), 0.0, 1.0)
    if correction is not None and rc.conformal and np.isfinite(correction.q80):
        q95 = correction.q95 if np.isfinite(correction.q95) else max(correction.q80, 0.0)
        q = q + ramp[None, :] * np.array([-correction.q80, correction.q80, -q95, q95])[:, None]
        flags.append(f"conformal:{correction.n_scores}@{correction.fraction:g}")
        if not np.isfinite(correction.q95):
            flags.append("conformal95:from80")
        params.update({"conformal_q80": correction.q80, "conformal_q95": q95})
    else:
        flags.append("conformal:unavailable")
    if n_q > 0:  # never narrower than the final measurement's own binomial noise (a conformal shrink from a
        # handful of references could otherwise collapse the interval onto the point)
        noise = np.sqrt(np.clip(point * (1.0 - point), 0.0, None) / n_q)
        q = np.stack([np.minimum(q[0], point - _Z80 * noise), np.maximum(q[1], point + _Z80 * noise),
                      np.minimum(q[2], point - _Z95 * noise), np.maximum(q[3], point + _Z95 * noise)])
    q = np.clip(q, 0.0, 1.0)
    q[0], q[1] = np.minimum(q[0], point), np.maximum(q[1], point)
    q[2], q[3] = np.minimum(q[2], q[0]), np.maximum(q[3], q[1])
    for refusal in (check_monotone(point, cfg.gates),
                    check_interval(float(q[0, -1]), float(q[1, -1]), g, u, cfg.gates)):
        if refusal:
            return Forecast(method, "refused", refusal.reason.value, refusal.message, params=params, flags=tuple(flags))
    curve = ForecastCurve(*(tuple(map(float, v)) for v in (x, point, q[0], q[1], q[2], q[3])))
    return Forecast(method, "ok", "", "forecast from reference runs passed all quality gates", final=float(point[-1]),
                    interval80=(float(q[0, -1]), float(q[1, -1])), interval95=(float(q[2, -1]), float(q[3, -1])),
                    curve=curve, params=params, flags=tuple(flags))
