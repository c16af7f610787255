"""P1: L2-regularised logistic regression on pass@1 as a binomial likelihood (the default probe).

The strength is chosen over a small grid by cross-validation grouped by question; the winning
strength's out-of-fold logits are what the calibrator is fitted on, and the final model is refitted
on every training row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from evalcast.probe.calibrate import binary_rows
from evalcast.probe.persist import decode_array, encode_array


@dataclass(frozen=True)
class LinearProbe:
    """``logit = x · coef + intercept``."""

    coef: np.ndarray
    intercept: float
    strength: float
    """The inverse L2 strength C chosen by cross-validation."""

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept

    def to_state(self) -> dict[str, Any]:
        return {"kind": "logistic", "coef": encode_array(self.coef), "intercept": self.intercept,
                "strength": self.strength}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LinearProbe:
        return cls(decode_array(state["coef"]), float(state["intercept"]), float(state["strength"]))


def binomial_loglik(logits: np.ndarray, n: np.ndarray, c: np.ndarray) -> float:
    """Mean log-likelihood per sample of ``c`` successes in ``n`` at P = sigmoid(logit)."""
    return float(-(c * np.logaddexp(0.0, -logits) + (n - c) * np.logaddexp(0.0, logits)).sum() / n.sum())


def _fit(x: np.ndarray, n: np.ndarray, c: np.ndarray, strength: float) -> LogisticRegression:
    index, label, weight = binary_rows(n, c)
    return LogisticRegression(C=strength, max_iter=2000).fit(x[index], label, sample_weight=weight)


def fit_logistic(x: np.ndarray, n: np.ndarray, c: np.ndarray, folds: np.ndarray,
                 grid: Sequence[float]) -> tuple[LinearProbe, np.ndarray]:
    """The probe refitted on all rows at the cross-validated strength, and that strength's out-of-fold logits.

    folds: a fold index per row that keeps each question's rows together (see :mod:`evalcast.probe.splits`);
    ties in the cross-validated likelihood go to the stronger regularisation (earlier in ``grid``).
    """
    best: tuple[float, float, np.ndarray] | None = None
    for strength in sorted(grid):
        oof = np.empty(len(x))
        for fold in np.unique(folds):
            held = folds == fold
            oof[held] = _fit(x[~held], n[~held], c[~held], strength).decision_function(x[held])
        loglik = binomial_loglik(oof, n, c)
        if best is None or loglik > best[0]:
            best = (loglik, strength, oof)
    assert best is not None
    _, strength, oof = best
    model = _fit(x, n, c, strength)
    return LinearProbe(model.coef_[0].astype(np.float64), float(model.intercept_[0]), strength), oof
