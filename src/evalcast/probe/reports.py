"""What the probe hands the monitor: per-checkpoint predictions and per-anchor quality reports.

Names on the tracker (``metrics()``): ``evalcast/<task>/pass@1_probe`` per task and ``all``; and at an
anchor, the *previous* probe's scores on the new checkpoint's held-out questions (earlier predicts
later): ``evalcast/<task>/probe_auroc``, ``probe_brier``, ``probe_pass@1_error``, ``probe_ece``,
``probe_spearman``. An undefined figure (NaN) is left out of ``metrics()``; the report says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from evalcast.probe.metrics import ProbeScores
from evalcast.proxy.aggregate import metric_name


class ProbeReason(str, Enum):
    """Why there is no probe, or no score."""

    NO_ANCHORS = "no_anchors"
    TOO_FEW_QUESTIONS = "too_few_questions"
    SINGLE_CLASS = "single_class"
    NO_PROBE = "no_probe"
    NO_HELDOUT = "no_heldout"


@dataclass(frozen=True)
class ProbePrediction:
    """P(solve) of every probe question at one checkpoint, and predicted pass@1 per task and ``all``.

    With no usable probe, ``p_solve`` is None, ``pass_at_1`` empty, and ``reason``/``message`` say why.
    """

    step: int
    ids: tuple[str, ...]
    tasks: tuple[str, ...]
    p_solve: np.ndarray | None = None
    pass_at_1: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.p_solve is not None

    def metrics(self) -> dict[str, float]:
        return {metric_name(task, "pass@1_probe"): value for task, value in self.pass_at_1.items()}


def _quality_metrics(scores: Mapping[str, ProbeScores]) -> dict[str, float]:
    out = {}
    for task, s in scores.items():
        for name, value in (("probe_auroc", s.auroc), ("probe_brier", s.brier),
                            ("probe_pass@1_error", s.pass_at_1_error), ("probe_ece", s.ece),
                            ("probe_spearman", s.spearman)):
            if math.isfinite(value):
                out[metric_name(task, name)] = value
    return out


@dataclass(frozen=True)
class AnchorReport:
    """What one anchor did to the probe.

    forward: the probe trained on earlier anchors, scored on this checkpoint's held-out questions
        (per task and ``all``), computed *before* retraining; empty with ``forward_reason`` when there was
        no earlier probe or no held-out question.
    fit: the retrained probe on this checkpoint's held-out questions (same checkpoint, unseen questions);
        empty with ``fit_reason`` when no probe could be trained. ``fit_message`` also carries notes,
        e.g. a skipped calibration.
    """

    step: int
    anchors: tuple[int, ...]
    train_questions: int
    heldout_questions: int
    forward: Mapping[str, ProbeScores] = field(default_factory=dict)
    forward_reason: str = ""
    forward_message: str = ""
    fit: Mapping[str, ProbeScores] = field(default_factory=dict)
    fit_reason: str = ""
    fit_message: str = ""

    def metrics(self) -> dict[str, float]:
        """The honest "earlier predicts later" figures (the forward scores)."""
        return _quality_metrics(self.forward)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "anchors": list(self.anchors), "train_questions": self.train_questions,
                "heldout_questions": self.heldout_questions,
                "forward": {k: v.to_dict() for k, v in self.forward.items()}, "forward_reason": self.forward_reason,
                "forward_message": self.forward_message, "fit": {k: v.to_dict() for k, v in self.fit.items()},
                "fit_reason": self.fit_reason, "fit_message": self.fit_message}
