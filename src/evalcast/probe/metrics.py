"""Probe quality against anchor labels (``docs/methods.md`` §3): AUROC, Brier, MSE, Spearman, ECE, pass@1 error.

Labels are per question ``n`` samples with ``c`` correct. AUROC and Brier are over the samples (binary
correctness, each question's ``n`` samples scored by its one prediction); MSE and Spearman are over
questions against pass@1 = c/n; pass@1 is the mean over questions. A figure that is undefined (AUROC
with one class, Spearman with a constant side) is NaN and ``note`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

ALL = "all"


@dataclass(frozen=True)
class ProbeScores:
    """How well predictions ``p`` match labels ``(n, c)`` on one set of questions."""

    questions: int
    samples: int
    auroc: float
    brier: float
    mse: float
    spearman: float
    ece: float
    pass_at_1: float
    """Mean labelled pass@1 (c/n) over the questions."""
    pass_at_1_pred: float
    """Mean predicted P(solve) over the questions."""
    note: str = ""

    @property
    def pass_at_1_error(self) -> float:
        return abs(self.pass_at_1_pred - self.pass_at_1)

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ProbeScores:
        return cls(**{k: (math.nan if v is None else v) for k, v in state.items()})


def expected_calibration_error(p: np.ndarray, n: np.ndarray, c: np.ndarray, bins: int = 10) -> float:
    """Sample-weighted ECE over ``bins`` equal-width bins of the predicted probability."""
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    weight = np.bincount(which, n, bins)
    hits = np.bincount(which, c, bins)
    confidence = np.bincount(which, n * p, bins)
    used = weight > 0
    return float(np.abs(hits[used] - confidence[used]).sum() / weight.sum())


def score(p: np.ndarray, n: np.ndarray, c: np.ndarray, bins: int = 10) -> ProbeScores:
    """Scores of predictions ``p`` (P(solve) per question) against ``n`` samples with ``c`` correct."""
    p, n, c = (np.asarray(a, dtype=np.float64) for a in (p, n, c))
    if len(p) == 0:
        raise ValueError("cannot score predictions on zero questions")
    rate = c / n
    notes = []
    if c.sum() == 0 or c.sum() == n.sum():
        auroc = math.nan
        notes.append(f"AUROC undefined: every one of the {int(n.sum())} samples "
                     f"{'failed' if c.sum() == 0 else 'succeeded'}")
    else:
        y = np.r_[np.ones(len(p)), np.zeros(len(p))]
        auroc = float(roc_auc_score(y, np.r_[p, p], sample_weight=np.r_[c, n - c]))
    if np.ptp(p) == 0 or np.ptp(rate) == 0:
        spearman = math.nan
        notes.append(f"Spearman undefined: the {'predictions' if np.ptp(p) == 0 else 'labels'} are constant")
    else:
        spearman = float(spearmanr(p, rate).statistic)
    return ProbeScores(
        questions=len(p), samples=int(n.sum()), auroc=auroc,
        brier=float((c * (1 - p) ** 2 + (n - c) * p**2).sum() / n.sum()), mse=float(((p - rate) ** 2).mean()),
        spearman=spearman, ece=expected_calibration_error(p, n, c, bins), pass_at_1=float(rate.mean()),
        pass_at_1_pred=float(p.mean()), note="; ".join(notes))


def score_by_task(p: np.ndarray, n: np.ndarray, c: np.ndarray, tasks: Sequence[str],
                  bins: int = 10) -> dict[str, ProbeScores]:
    """:func:`score` per task (first-seen order) and over all questions (key ``"all"``)."""
    task_array = np.asarray(tasks, dtype=object)
    out = {task: score(p[task_array == task], n[task_array == task], c[task_array == task], bins)
           for task in dict.fromkeys(tasks)}
    out[ALL] = score(p, n, c, bins)
    return out
