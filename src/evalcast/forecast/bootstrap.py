"""Bootstrap resampling: residual blocks over checkpoints, questions over anchors, and interval bands.

* Proxy series: a moving-block residual bootstrap over checkpoints. Resampling smoothed points as if they
  were independent would understate the noise about √window-fold, since neighbours share their noise;
  instead the raw log-residuals of the fit are resampled in blocks (keeping short-range correlation) and
  added back to the fitted curve, then smoothed and refitted like the data.
* Anchors: the question set is resampled once per replicate and shared by all anchors (a hard draw of
  questions moves every anchor together); without per-question outcomes, binomial draws per anchor.
  The uncertainty of the link itself is carried by pooling the replicates of several links
  (``ForecastConfig.links``), not by resampling.
* Refits use :func:`evalcast.forecast.fit.kstep_refit`, vectorised over replicates.
"""

from __future__ import annotations

import numpy as np

from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.gates import check_bootstrap, check_interval, check_monotone
from evalcast.forecast.prepare import AnchorTable
from evalcast.forecast.results import Forecast, ForecastCurve


def block_residuals(resid: np.ndarray, n_boot: int, rng: np.random.Generator, block: int = 3) -> np.ndarray:
    """``(n_boot, n)`` moving-block resamples of the residual series ``resid``."""
    n = resid.size
    block = max(1, min(block, n))
    n_blocks = -(-n // block)
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)[:, :n]
    return resid[idx]


def question_counts(n_questions: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, Q)`` multiplicities of a resample of Q questions with replacement."""
    return rng.multinomial(n_questions, np.full(n_questions, 1.0 / n_questions), size=n_boot).astype(float)


def resampled_means(matrix: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Column means of a question × column matrix (NaN: missing) under question ``counts`` → ``(B, cols)``."""
    ok = np.isfinite(matrix)
    num = counts @ np.where(ok, matrix, 0.0)
    den = counts @ ok.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-300), np.nan)


def anchor_replicates(anchors: AnchorTable, counts: np.ndarray | None, n_boot: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, J)`` replicate accuracies: resampled questions, else binomial draws per anchor."""
    if anchors.per_question is not None and counts is not None:
        reps = resampled_means(anchors.per_question, counts)
        return np.where(np.isfinite(reps), reps, anchors.acc[None, :])
    n = np.maximum(anchors.n.astype(int), 1)
    return rng.binomial(n[None, :], np.clip(anchors.acc, 0.0, 1.0)[None, :], size=(n_boot, n.size)) / n[None, :]


def bands(curves: np.ndarray) -> dict[str, np.ndarray]:
    """80% and 95% percentile bands of replicate curves ``(B, G)`` (all finite)."""
    q = np.percentile(curves, [10.0, 90.0, 2.5, 97.5], axis=0)
    return {"lo80": q[0], "hi80": q[1], "lo95": q[2], "hi95": q[3]}


def summarise(method: str, x: np.ndarray, point: np.ndarray, reps: np.ndarray, g: float, u: float,
              cfg: ForecastConfig, params: dict[str, float], flags: list[str]) -> Forecast:
    """Gate a point curve and its replicates (interval, monotonicity, bootstrap success) into a Forecast."""
    ok_rows = np.all(np.isfinite(reps), axis=1)
    for refusal in (check_bootstrap(float(np.mean(ok_rows)) if ok_rows.size else 0.0, cfg.gates),
                    check_monotone(point, cfg.gates)):
        if refusal:
            return Forecast(method, "refused", refusal.reason.value, refusal.message, params=params, flags=tuple(flags))
    bd = bands(reps[ok_rows])
    params = {**params, "bootstrap_median": float(np.median(reps[ok_rows, -1]))}
    refusal = check_interval(float(bd["lo80"][-1]), float(bd["hi80"][-1]), g, u, cfg.gates)
    if refusal:
        return Forecast(method, "refused", refusal.reason.value, refusal.message, params=params, flags=tuple(flags))
    curve = ForecastCurve(tuple(map(float, x)), tuple(map(float, point)), *(tuple(map(float, bd[k])) for k in
                                                                      ("lo80", "hi80", "lo95", "hi95")))
    return Forecast(method, "ok", "", "forecast passed all quality gates", final=float(point[-1]),
                    interval80=(float(bd["lo80"][-1]), float(bd["hi80"][-1])),
                    interval95=(float(bd["lo95"][-1]), float(bd["hi95"][-1])), curve=curve, params=params,
                    flags=tuple(flags))
