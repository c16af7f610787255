"""Hidden-state probe of per-question pass@1, trained on sparse anchor labels (``docs/methods.md`` §3).

Features come from :class:`evalcast.stats.features.FeatureTap` in the proxy forward pass;
:class:`ProbeTrainer` is the stateful object the monitor holds (``add_anchor`` / ``predict`` /
``state_dict``). Probes: P1 logistic (default), P2 MLP, P3 attention pooling over prompt tokens.
"""

from evalcast.probe.calibrate import Calibrator, fit_calibrator
from evalcast.probe.config import NetConfig, ProbeConfig
from evalcast.probe.metrics import ProbeScores, expected_calibration_error, score, score_by_task
from evalcast.probe.persist import features_from_arrays, features_to_arrays
from evalcast.probe.reports import AnchorReport, ProbePrediction, ProbeReason
from evalcast.probe.splits import heldout_mask, question_folds
from evalcast.probe.trainer import ProbeTrainer

__all__ = [
    "AnchorReport", "Calibrator", "NetConfig", "ProbeConfig", "ProbePrediction", "ProbeReason", "ProbeScores",
    "ProbeTrainer", "expected_calibration_error", "features_from_arrays", "features_to_arrays", "fit_calibrator",
    "heldout_mask", "question_folds", "score", "score_by_task",
]
