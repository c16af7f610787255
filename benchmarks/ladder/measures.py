"""Small statistics helpers shared by the analysis sections."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from evalcast.alerts.history import LOWER_IS_BETTER as ALERT_LOWER_IS_BETTER

#: Metrics where lower is better (a weighting suffix keeps its base metric's direction): evalcast's own list,
#: plus the losses and two statistics whose direction the library leaves open. Entropy is taken as
#: lower-is-better (a model sure of the expert's next token), which held on every run measured here.
LOWER_IS_BETTER = ALERT_LOWER_IS_BETTER | {"entropy", "excess_surprisal", "val_loss", "val_loss_mix", "train_loss"}


def orientation(metric: str) -> float:
    """-1 for lower-is-better metrics, +1 otherwise (so an oriented correlation is high when the metric works)."""
    return -1.0 if metric.split(".")[0] in LOWER_IS_BETTER else 1.0


def spearman(x: Iterable[float], y: Iterable[float], min_points: int = 3) -> float:
    """Spearman ρ over the pairs where both are finite; NaN with too few points or a constant side."""
    a, b = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < min_points or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def nanmean(values: Iterable[float]) -> float:
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
