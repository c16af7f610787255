"""Per-difficulty-cluster forecasts, COD-style, adapted to one run (``docs/methods.md`` §6).

Questions are clustered by their outcome trajectories: pass@1 at each anchor, densified with the probe's
predictions at evenly spaced checkpoints when the probe covers every question. MeanShift with a bandwidth
from ``estimate_bandwidth``; clusters below the minimum size are outliers, left out of the fits and
counted, for the aggregate, in the nearest kept cluster. With few anchors the questions fall back to
quantile bins of the first anchor whose pass rates vary.

Per cluster: the cluster's own accuracy~proxy sigmoid on the task's proxy curve ("twostep", which follows
the LR schedule) or the COD law against compute ("cod"). A cluster that never leaves chance is
non-emergent and carried at its last value, flagged; so is a cluster whose accuracy has not moved beyond
its noise. The aggregate weighs clusters by size.
"""

from __future__ import annotations

import numpy as np
import sklearn
from sklearn.cluster import MeanShift, estimate_bandwidth

from evalcast.forecast.accuracy import AccuracyPoints, fit_sigmoid, sigmoid_bootstrap
from evalcast.forecast.bootstrap import anchor_replicates, summarise
from evalcast.forecast.config import ClusterConfig, ForecastConfig
from evalcast.forecast.fit import ALPHA_BOUNDS, at_bound, fit_curve, kstep_refit
from evalcast.forecast.gates import Reason, Refusal, check_anchors
from evalcast.forecast.laws import COD_PARAMS, cod, cod_jac, sigmoid
from evalcast.forecast.prepare import AnchorTable, Axis, binomial_se
from evalcast.forecast.results import ClusterBreakdown, ClusterForecast, Forecast, refused
from evalcast.forecast.twostep import ProxyFit, proxy_scale


def cluster_questions(mat: np.ndarray, qids: tuple[str, ...], probe_ids: tuple[str, ...],
                      probe: np.ndarray | None, cfg: ClusterConfig) -> tuple[np.ndarray, str, int]:
    """Cluster the rows of a question × anchor pass@1 matrix.

    Returns labels per question (−1: outlier), the method used, and the number of outliers.
    """
    filled = np.where(np.isfinite(mat), mat, np.nanmean(mat, axis=0, keepdims=True))
    filled = np.where(np.isfinite(filled), filled, 0.0)
    if mat.shape[1] <= cfg.max_anchors_for_bins:
        return _quantile_bins(mat, cfg.n_bins), "quantile_bins", 0
    features = filled
    if probe is not None and set(qids) <= set(probe_ids):
        rows = [probe_ids.index(q) for q in qids]
        cols = np.flatnonzero(np.all(np.isfinite(probe[rows]), axis=0))
        if cols.size:
            pick = cols[np.unique(np.linspace(0, cols.size - 1, cfg.probe_columns).round().astype(int))]
            features = np.hstack([filled, probe[np.ix_(rows, pick)]])
    q = features.shape[0]
    bandwidth = (estimate_bandwidth(features, quantile=cfg.bandwidth_quantile, n_samples=min(q, 200), random_state=0)
                 if q > 1 else 0.0)
    if not np.isfinite(bandwidth) or bandwidth <= 0:
        return _quantile_bins(mat, cfg.n_bins), "quantile_bins", 0
    order = np.argsort(features.mean(axis=1), kind="stable")
    seeds = features[order[np.unique(np.linspace(0, q - 1, min(q, cfg.n_seeds)).round().astype(int))]]
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):  # halves the run time
        ms = MeanShift(bandwidth=bandwidth, seeds=seeds, cluster_all=True, max_iter=100).fit(features)
    labels = ms.labels_.copy()
    min_size = max(cfg.min_cluster_size, int(np.ceil(cfg.min_cluster_frac * q)))
    sizes = np.bincount(labels)
    kept = np.flatnonzero(sizes >= min_size)
    if kept.size == 0:
        return _quantile_bins(mat, cfg.n_bins), "quantile_bins", 0
    outlier = ~np.isin(labels, kept)
    return np.where(outlier, -1, np.searchsorted(kept, labels)), "meanshift", int(outlier.sum())


def _quantile_bins(mat: np.ndarray, n_bins: int) -> np.ndarray:
    """Bins of the first anchor whose pass rates vary (all questions in one bin if none does)."""
    for j in range(mat.shape[1]):
        col = mat[:, j]
        if np.nanmax(col) > np.nanmin(col):
            col = np.where(np.isfinite(col), col, np.nanmedian(col))
            edges = np.unique(np.quantile(col, np.linspace(0, 1, n_bins + 1)[1:-1]))
            labels = np.digitize(col, edges, right=True)
            return np.unique(labels, return_inverse=True)[1]
    return np.zeros(mat.shape[0], dtype=int)


def _nearest(labels: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Outliers (−1) joined to the cluster with the nearest mean trajectory."""
    kept = np.unique(labels[labels >= 0])
    centres = np.array([features[labels == k].mean(axis=0) for k in kept])
    out = labels.copy()
    for i in np.flatnonzero(labels < 0):
        out[i] = kept[int(np.argmin(np.sum((centres - features[i]) ** 2, axis=1)))]
    return out


def cluster_breakdown(axis: Axis, anchors: AnchorTable, pf: ProxyFit | None,
                      proxy_reps: tuple[np.ndarray, np.ndarray] | None, probe_ids: tuple[str, ...],
                      probe: np.ndarray | None, counts: np.ndarray | None, g: float, u: float, cfg: ForecastConfig,
                      rng: np.random.Generator) -> ClusterBreakdown | None:
    """Cluster forecasts and their aggregate; None without per-question outcomes.

    The aggregate sums every cluster's curve and replicates, weighted by size, and is gated on its own:
    a cluster refused only for its own width (a small cluster is noisy) still counts; a cluster whose
    law could not be fitted at all leaves no aggregate.
    """
    if anchors.per_question is None or anchors.size == 0:
        return None
    ccfg = cfg.clusters
    mat = anchors.per_question
    labels, method, n_out = cluster_questions(mat, anchors.qids, probe_ids, probe, ccfg)
    share_labels = _nearest(labels, np.where(np.isfinite(mat), mat, 0.0)) if n_out else labels
    law = ccfg.law if pf is not None and proxy_reps is not None else "cod"
    members: list[ClusterForecast] = []
    point_sum, rep_sum = np.zeros(axis.grid.size), np.zeros((cfg.n_bootstrap, axis.grid.size))
    failed: list[tuple[str, str]] = []
    for k in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == k)
        share = float(np.mean(share_labels == k))
        pts = _cluster_points(anchors, rows, counts, cfg, rng)
        emergent = float(np.max(pts.acc)) > g + ccfg.non_emergent_margin
        moved = float(np.ptp(pts.acc)) >= cfg.gates.min_anchor_range_se * float(np.median(pts.se))
        if emergent and moved:
            fc, point, rep = _cluster_law(law, axis, pts, pf, proxy_reps, g, u, cfg)
        else:
            fc, point, rep = _carried(axis, pts, cfg, "non_emergent" if not emergent else "flat")
        if np.all(np.isfinite(point)):
            point_sum += share * point
            rep_sum += share * rep
        else:
            failed.append((fc.reason, f"cluster {int(k)} ({fc.reason})"))
        members.append(ClusterForecast(int(k), int(rows.size), share, float(pts.acc[-1]), emergent, fc))
    if failed:
        aggregate = refused("clusters", failed[0][0], "no aggregate: " + ", ".join(f[1] for f in failed) +
                            " could not be fitted")
    else:
        aggregate = summarise("clusters", axis.grid, point_sum, rep_sum, g, u, cfg, {"n_clusters": len(members)},
                              [f"method:{method}", f"law:{law}"])
    return ClusterBreakdown(method, law, n_out, tuple(members), aggregate)


def _cluster_points(anchors: AnchorTable, rows: np.ndarray, counts: np.ndarray | None, cfg: ForecastConfig,
                    rng: np.random.Generator) -> AccuracyPoints:
    """A cluster's mean pass@1 per anchor, its SE, and replicates under the task's question resampling."""
    mat = anchors.per_question[rows]  # type: ignore[index]
    n = np.maximum(np.sum(np.isfinite(mat), axis=0).astype(float), 1.0)
    acc = np.nansum(mat, axis=0) / n
    se = binomial_se(acc, n)
    sub = AnchorTable(anchors.index, acc, n, se, anchors.qids, mat)
    reps = anchor_replicates(sub, None if counts is None else counts[:, rows], cfg.n_bootstrap, rng)
    return AccuracyPoints(anchors.index, acc, se, 1.0 / (se**2 + cfg.model_error**2), reps, anchors.size, "anchors")


def _carried(axis: Axis, pts: AccuracyPoints, cfg: ForecastConfig,
             flag: str) -> tuple[Forecast, np.ndarray, np.ndarray]:
    last, reps = float(pts.acc[-1]), pts.replicates[:, -1]
    point = np.full(axis.grid.size, last)
    rep = np.repeat(reps[:, None], axis.grid.size, axis=1)
    fc = summarise("cluster", axis.grid, point, rep, 0.0, 1.0, cfg, {"last": last}, [flag, "no_extrapolation"])
    return fc, point, rep


def _cluster_law(law: str, axis: Axis, pts: AccuracyPoints, pf: ProxyFit | None,
                 proxy_reps: tuple[np.ndarray, np.ndarray] | None, g: float, u: float,
                 cfg: ForecastConfig) -> tuple[Forecast, np.ndarray, np.ndarray]:
    nan = np.full(axis.grid.size, np.nan)
    try:
        if law == "twostep" and pf is not None and proxy_reps is not None:
            center, scale = proxy_scale(pf)
            af = fit_sigmoid(pf.at(axis, pts.index), pts, g, u, center, scale, cfg, what="cluster accuracy~proxy")
            y_grid = pf.predict(axis.t1_grid, axis.t2_grid)
            series, grid_reps = proxy_reps
            theta = sigmoid_bootstrap(af, series[:, pts.index], pts.replicates, pts.weight, cfg)
            point, rep, params = af.predict(y_grid), sigmoid(theta, (grid_reps - center) / scale, g), af.params()
        else:
            point, rep, params = _cod_fit(axis, pts, g, cfg)
    except Refusal as r:
        return refused("cluster", r.reason.value, r.message), nan, np.full((cfg.n_bootstrap, axis.grid.size), np.nan)
    return summarise("cluster", axis.grid, point, rep, g, u, cfg, params, []), point, rep


def _cod_fit(axis: Axis, pts: AccuracyPoints, g: float, cfg: ForecastConfig) -> tuple[np.ndarray, np.ndarray,
                                                                                       dict[str, float]]:
    refusal = check_anchors(pts.acc, pts.se, cfg.gates)
    if refusal:
        raise refusal
    x0 = float(axis.x[pts.index[0]])
    t = axis.x[pts.index] / x0
    lower, upper = np.array([0.0, ALPHA_BOUNDS[0], 0.0]), np.array([1e3, ALPHA_BOUNDS[1], 50.0])
    q = np.clip((pts.acc - g) / max(1 - g, 1e-9), 1e-3, 0.999)
    inits = [(float(-np.log(q[0])), b, 0.0) for b in (0.2, 0.5, 1.0)]
    best = fit_curve(lambda tv, a, b, c: cod(np.array([a, b, c]), tv, g), t, pts.acc, pts.weight**-0.5, inits,
                     bounds=(lower, upper), jac=lambda tv, a, b, c: cod_jac(np.array([a, b, c]), tv, g))
    if best is None:
        raise Refusal(Reason.FIT_FAILED, "the COD cluster law did not converge")
    theta = best[0]
    if at_bound(float(theta[1]), *ALPHA_BOUNDS, cfg.gates.bound_rtol):
        raise Refusal(Reason.EXPONENT_AT_BOUND, f"the COD exponent sits at its bound (b={theta[1]:.3g})")
    tb = np.broadcast_to(t, pts.replicates.shape)
    th = kstep_refit(lambda p: cod(p, tb, g), lambda p: cod_jac(p, tb, g), theta, pts.replicates,
                     np.broadcast_to(pts.weight, tb.shape), lower, upper, steps=cfg.kstep)
    tg = axis.grid / x0
    return cod(theta, tg, g), cod(th, tg, g), {**dict(zip(COD_PARAMS, map(float, theta))), "x0": x0}
