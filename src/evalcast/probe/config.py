"""Probe configuration (METHODS §3.2, §8): frozen, JSON-round-trippable dataclasses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

ProbeKind = Literal["logistic", "mlp", "attention"]
Pooling = Literal["last", "mean"]
Normalization = Literal["checkpoint", "global"]
Calibration = Literal["platt", "temperature", "isotonic", "none"]


@dataclass(frozen=True)
class NetConfig:
    """Training settings of the torch probes (P2 MLP, P3 attention pooling)."""

    hidden: int = 256
    """MLP hidden width (d' → hidden → 1)."""
    dropout: float = 0.1
    """MLP dropout after the GELU."""
    heads: int = 4
    """Attention probe: learned queries, one per head, over the prompt tokens."""
    lr: float = 3e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 15
    """Early stopping: epochs without a better validation loss before training stops (best weights kept)."""
    validation_folds: int = 5
    """One of this many question folds of the training questions is the early-stopping validation set."""

    def __post_init__(self) -> None:
        checks = {"hidden": self.hidden >= 1, "dropout": 0.0 <= self.dropout < 1.0, "heads": self.heads >= 1,
                  "lr": self.lr > 0, "weight_decay": self.weight_decay >= 0, "batch_size": self.batch_size >= 1,
                  "max_epochs": self.max_epochs >= 1, "patience": self.patience >= 1,
                  "validation_folds": self.validation_folds >= 2}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"NetConfig.{name}={getattr(self, name)!r} is out of range")


@dataclass(frozen=True)
class ProbeConfig:
    """How the probe reads features, trains on anchors and calibrates."""

    model: ProbeKind = "logistic"
    """P1 ``logistic`` (default), P2 ``mlp``, P3 ``attention`` (needs token features)."""
    pooling: Pooling = "last"
    """Which pooled feature the logistic and MLP probes read: last prompt token or mean over the prompt."""
    layers: tuple[int, ...] | None = None
    """Decoder-block indices to read (a subset of those captured); None reads every captured layer."""
    normalization: Normalization = "checkpoint"
    """``checkpoint``: z-score every feature over the probe questions at its own checkpoint (METHODS §9.18);
    robust to drift, but it also removes the checkpoint-wide shift, so mean P(solve) stays near the level of
    the training anchors (the probe ranks questions). ``global``: one z-score fitted on the pooled training
    rows; it can follow the level, but decays as activation norms grow."""
    project_dim: int | None = 512
    """Fixed Gaussian projection of the hidden-state inputs to this many dimensions when wider; None never
    projects."""
    proxy_features: bool = True
    """Append each question's own teacher-forced statistics (``CheckpointFeatures.proxies``, which the
    monitor always fills) to the logistic and MLP inputs. Per-checkpoint z-scores keep the hidden states
    comparable across checkpoints but erase the overall level, so a probe without them predicts its
    anchors' pass@1 level at every later checkpoint; these statistics are in natural units and move with
    the model."""
    heldout_fraction: float = 0.2
    """Share of questions never trained on: the fit and forward-transfer figures are scored on them."""
    calibration: Calibration = "platt"
    """Fitted on logits of training questions the model did not fit (cross-fitted or validation)."""
    c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
    """Inverse L2 strengths tried for the logistic probe, chosen by question-grouped cross-validation."""
    cv_folds: int = 3
    min_questions: int = 8
    """Fewest labelled training questions to train on."""
    min_per_class: int = 2
    """Fewest training questions with a success (c > 0), and with a failure (c < n), to train on (>= 2:
    folds are stratified so that every fold's training part keeps both classes)."""
    ece_bins: int = 10
    net: NetConfig = field(default_factory=NetConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        object.__setattr__(self, "c_grid", tuple(float(x) for x in self.c_grid))
        checks = {"model": self.model in get_args(ProbeKind), "pooling": self.pooling in get_args(Pooling),
                  "normalization": self.normalization in get_args(Normalization),
                  "calibration": self.calibration in get_args(Calibration),
                  "heldout_fraction": 0.0 <= self.heldout_fraction < 1.0, "cv_folds": self.cv_folds >= 2,
                  "min_questions": self.min_questions >= self.cv_folds, "min_per_class": self.min_per_class >= 2,
                  "c_grid": bool(self.c_grid) and min(self.c_grid) > 0, "ece_bins": self.ece_bins >= 1,
                  "project_dim": self.project_dim is None or self.project_dim >= 1}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"ProbeConfig.{name}={getattr(self, name)!r} is out of range")

    def to_dict(self) -> dict[str, Any]:
        state = dataclasses.asdict(self)
        state["layers"] = None if self.layers is None else list(self.layers)
        state["c_grid"] = list(self.c_grid)
        return state

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ProbeConfig:
        return cls(**{**state, "net": NetConfig(**state["net"])})
