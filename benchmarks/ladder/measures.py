"""Small statistics helpers shared by the analysis sections."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from evalcast.alerts.history import LOWER_IS_BETTER as ALERT_LOWER_IS_BETTER

#: Metrics where lower is better (a weighting suffix keeps its base metric's direction): evalcast's own list
#: plus the losses. Metrics whose direction the library leaves open (``OPEN``) get theirs from the tuning runs
#: (:func:`choose_signs`), never from the runs they are scored on.
LOWER_IS_BETTER = ALERT_LOWER_IS_BETTER | {"val_loss", "val_loss_mix", "train_loss"}
OPEN = ("entropy", "excess_surprisal")


def orientation(metric: str, signs: Mapping[str, float] | None = None) -> float:
    """-1 for lower-is-better metrics, +1 otherwise (so an oriented correlation is high when the metric works);
    an ``OPEN`` metric takes its sign from ``signs`` (+1 when absent)."""
    base = metric.split(".")[0]
    if base in OPEN:
        return float((signs or {}).get(base, 1.0))
    return -1.0 if base in LOWER_IS_BETTER else 1.0


def spearman(x: Iterable[float], y: Iterable[float], min_points: int = 3) -> float:
    """Spearman ρ over the pairs where both are finite; NaN with too few points or a constant side."""
    a, b = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < min_points or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def rank_score(metric: Sequence[float], truth: Sequence[float], min_points: int = 3) -> float:
    """Spearman ρ of a metric with the truth across runs at one point, for a ranking figure.

    NaN only when the *truth* cannot be ranked (a non-finite value, fewer than ``min_points`` runs, or every run
    equal): the point is then left out for every metric alike. A metric that cannot rank the runs (constant,
    or missing for any run) scores ρ = 0: it tells the runs apart no better than chance, and dropping it would
    average its ρ over fewer, kinder points than the other metrics'.
    """
    a, b = np.asarray(metric, dtype=float), np.asarray(truth, dtype=float)
    if len(b) < min_points or not np.isfinite(b).all() or np.ptp(b) == 0:
        return math.nan
    if not np.isfinite(a).all() or np.ptp(a) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def nanmean(values: Iterable[float | None]) -> float:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def interp_log(x_new: float, x: np.ndarray, y: np.ndarray) -> float:
    """``y`` at ``x_new``, linear in log x between the nearest finite points (NaN outside their range)."""
    keep = np.isfinite(y) & (x > 0)
    if keep.sum() < 2:
        return math.nan
    lx, ly = np.log(x[keep]), y[keep]
    t = math.log(x_new)
    if t < lx[0] - 1e-9 or t > lx[-1] + 1e-9:
        return math.nan
    return float(np.interp(t, lx, ly))


def leaves_band(values: np.ndarray, start: int, window: int) -> int | None:
    """First index ``k >= start`` where an oriented series (higher is better) falls below every one of its
    ``window`` values before ``start`` (its pre-change band); ``None`` if it never does, or when the band is
    not fully known (fewer than ``window`` finite values before ``start``)."""
    before = values[max(0, start - window):start]
    if len(before) < window or not np.isfinite(before).all():
        return None
    low = before.min()
    for k in range(start, len(values)):
        if np.isfinite(values[k]) and values[k] < low:
            return k
    return None


def clean(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, non-finite floats to None, recursively."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [clean(v) for v in value.tolist()]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
