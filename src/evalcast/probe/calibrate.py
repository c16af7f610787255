"""Calibration of probe logits into P(solve): Platt scaling, temperature, or isotonic regression.

Fitted on logits the probe model did not train on (cross-fitted or early-stopping validation logits of
training questions), with soft labels c/n weighted by n. Prediction uses the stored parameters with
numpy only, so a reloaded calibrator maps logits to exactly the same probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from evalcast.probe.persist import decode_array, encode_array

#: Inverse L2 strength of the 1-2 parameter Platt / temperature fit (barely regularised).
_PLATT_C = 100.0


@dataclass(frozen=True)
class Calibrator:
    """``sigmoid(slope * z + intercept)``, or for ``isotonic`` a monotone map of ``sigmoid(z)``."""

    kind: str = "none"
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    knots_y: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def apply(self, logits: np.ndarray) -> np.ndarray:
        if self.kind == "isotonic":
            return np.interp(expit(logits), self.knots_x, self.knots_y)
        return expit(self.slope * np.asarray(logits, dtype=np.float64) + self.intercept)

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "slope": self.slope, "intercept": self.intercept,
                "knots_x": encode_array(self.knots_x), "knots_y": encode_array(self.knots_y)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Calibrator:
        return cls(state["kind"], float(state["slope"]), float(state["intercept"]),
                   decode_array(state["knots_x"]), decode_array(state["knots_y"]))


def binary_rows(n: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row index, binary label, weight): each question as a success row (weight c) and a failure row
    (weight n - c), zero weights dropped; a weighted fit on these is the binomial likelihood of c/n."""
    index = np.r_[np.arange(len(n)), np.arange(len(n))]
    label = np.r_[np.ones(len(n)), np.zeros(len(n))]
    weight = np.r_[c, n - c].astype(np.float64)
    keep = weight > 0
    return index[keep], label[keep], weight[keep]


def fit_calibrator(kind: str, logits: np.ndarray, n: np.ndarray, c: np.ndarray) -> tuple[Calibrator, str]:
    """A calibrator of ``kind`` fitted on ``logits`` with labels ``(n, c)``; ``none`` and a note if impossible."""
    if kind not in ("platt", "temperature", "isotonic", "none"):
        raise ValueError(f"unknown calibration {kind!r}; use platt, temperature, isotonic or none")
    if kind == "none":
        return Calibrator(), ""
    if c.sum() == 0 or c.sum() == n.sum():
        return Calibrator(), (f"{kind} calibration skipped: the {len(n)} calibration rows are all "
                              f"{'failures' if c.sum() == 0 else 'successes'}")
    if kind == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(expit(logits), c / n, sample_weight=n)
        return Calibrator("isotonic", knots_x=iso.X_thresholds_.astype(np.float64),
                          knots_y=iso.y_thresholds_.astype(np.float64)), ""
    index, label, weight = binary_rows(n, c)
    model = LogisticRegression(C=_PLATT_C, fit_intercept=kind == "platt")
    model.fit(np.asarray(logits, dtype=np.float64)[index, None], label, sample_weight=weight)
    return Calibrator(kind, float(model.coef_[0, 0]), float(model.intercept_[0]) if kind == "platt" else 0.0), ""
