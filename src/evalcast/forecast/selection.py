"""Proxy selection by rolling backtest, not by correlation (``docs/methods.md`` §6).

Inside one run nearly every proxy trends with training, so all of them correlate with accuracy. What
matters is which one *forecasts*: for each candidate and rolling origin j, the two-step pipeline is fitted
on the checkpoints up to anchor j and anchors 1..j, and predicts anchors j+1..J; the score is the mean
absolute error. An origin where the candidate cannot be fitted scores the error of carrying anchor j's
accuracy forward (so a candidate never wins by failing). Scores within ``max(0.005, 10%)`` of the best
count as ties, broken toward the simpler proxy.

Before the backtest, candidates are screened for forecastability alone: enough finite values, a clear
trend over checkpoints (|Spearman| ≥ 0.5), then the ``max_candidates`` with the least
checkpoint-to-checkpoint noise relative to their range. With fewer than ``min_backtest_anchors``
anchors there is nothing to backtest on: the configured default proxy (or the simplest present) is used.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import spearmanr

from evalcast.forecast.accuracy import AccuracyPoints, fit_links
from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.fit import moving_average
from evalcast.forecast.gates import Refusal
from evalcast.forecast.prepare import Axis
from evalcast.forecast.results import ProxyChoice
from evalcast.forecast.twostep import fit_proxy, proxy_scale

#: Base statistics from simplest to most elaborate; weighted variants ("prob.rarity") rank
#: after their base statistic.
SIMPLICITY = ("nll", "prob", "top1", "topk", "log_rank", "recip_rank", "rank", "margin", "entropy",
              "excess_surprisal", "greedy_match", "pair_accuracy")


def complexity(name: str) -> tuple[int, int, int, str]:
    """Sort key: fewer name parts, then a simpler base statistic, then a shorter name."""
    base = name.split(".")[0].split("/")[-1]
    rank = next((i for i, s in enumerate(SIMPLICITY) if base == s or base.startswith(s)), len(SIMPLICITY))
    return (name.count(".") + name.count("/"), rank, len(name), name)


def screen(proxies: Mapping[str, np.ndarray], x: np.ndarray, cfg: ForecastConfig) -> list[str]:
    """Candidates that trend clearly, smoothest first, at most ``max_candidates`` (default proxy kept)."""
    noise: dict[str, float] = {}
    for name, raw in proxies.items():
        ok = np.isfinite(raw)
        if ok.sum() < cfg.gates.min_points:
            continue
        sm = moving_average(raw, cfg.smooth_window)[ok]
        if np.ptp(sm) <= 0:
            continue
        rho = spearmanr(x[ok], sm).statistic
        if not np.isfinite(rho) or abs(rho) < 0.5:
            continue
        noise[name] = float(np.median(np.abs(raw[ok] - sm)) / np.ptp(sm))
    ranked = sorted(noise, key=lambda n: (noise[n], complexity(n)))[: cfg.max_candidates]
    if cfg.default_proxy in noise and cfg.default_proxy not in ranked:
        ranked[-1] = cfg.default_proxy
    return ranked


def backtest_error(raw: np.ndarray, axis: Axis, pts: AccuracyPoints, g: float, u: float, cfg: ForecastConfig,
                   origins: list[int]) -> float:
    """Mean absolute error of the two-step forecast of later anchors from rolling origins."""
    errors = []
    anchor_idx, anchor_acc = pts.index[: pts.n_anchors], pts.acc[: pts.n_anchors]
    for j in origins:
        last = int(anchor_idx[j - 1])
        held_idx, held_acc = anchor_idx[j:], anchor_acc[j:]
        try:
            pf = fit_proxy("candidate", raw[: last + 1], axis.truncated(last + 1), cfg, polish=False)
            cut = axis.truncated(last + 1)
            y_pts = pf.at(cut, np.minimum(pts.index, last))
            keep = (pts.index <= last) & np.isfinite(y_pts)
            sub = AccuracyPoints(pts.index[keep], pts.acc[keep], pts.se[keep], pts.weight[keep],
                                 pts.replicates[:, keep], int(np.sum(keep[: pts.n_anchors])), pts.source)
            center, scale = proxy_scale(pf)
            fits = fit_links(y_pts[keep], sub, g, u, center, scale, cfg)
            y_held = pf.predict(axis.t1[held_idx], axis.t2[held_idx])
            pred = np.mean([af.predict(y_held) for af in fits], axis=0)
        except Refusal:
            pred = np.full(held_acc.size, anchor_acc[j - 1])
        errors.append(float(np.mean(np.abs(pred - held_acc))))
    return float(np.mean(errors))


def rank_proxies(proxies: Mapping[str, np.ndarray], axis: Axis, pts: AccuracyPoints, g: float, u: float,
                 cfg: ForecastConfig) -> list[ProxyChoice]:
    """Candidates in order of preference, each with the evidence; empty when no proxy trends at all.

    The caller forecasts with the first one whose fit passes its gates (a proxy that ranked well on
    earlier origins can still fail to fit the full window).
    """
    candidates = screen(proxies, axis.x, cfg)
    if not candidates:
        return []
    if len(candidates) == 1:
        return [ProxyChoice(candidates[0], "only_candidate", message="the only proxy with a clear trend")]
    n_anchors = pts.n_anchors
    if n_anchors < cfg.min_backtest_anchors:
        order = sorted(candidates, key=lambda n: (n != cfg.default_proxy, complexity(n)))
        msg = (f"{n_anchors} anchors are too few for a backtest (need {cfg.min_backtest_anchors}); using the "
               f"default proxy '{cfg.default_proxy}' or else the simplest one")
        return [ProxyChoice(n, "default", message=msg) for n in order]
    first = cfg.gates.min_anchors
    origins = sorted({int(v) for v in np.linspace(first, n_anchors - 1, cfg.backtest_origins).round()})
    scores = {name: backtest_error(proxies[name], axis, pts, g, u, cfg, origins) for name in candidates}
    best = min(scores.values())
    tol = max(0.005, 0.1 * best)
    order = sorted(candidates, key=lambda n: (scores[n] > best + tol, complexity(n) if scores[n] <= best + tol
                                              else (scores[n],)))
    msg = (f"lowest rolling-backtest MAE over origins {origins} (ties within max(0.005, 10%) go to the simpler "
           "proxy)")
    return [ProxyChoice(n, "backtest", scores, msg) for n in order]
