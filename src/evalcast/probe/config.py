"""Probe configuration: frozen, JSON-round-trippable dataclasses (the probe is described in ``docs/methods.md``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from evalcast.validation import Rule, above, at_least, between, check_config, each

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
    """AdamW learning rate."""
    weight_decay: float = 1e-2
    """AdamW weight decay."""
    batch_size: int = 64
    """Training rows per step."""
    max_epochs: int = 200
    """Most passes over the training rows."""
    patience: int = 15
    """Early stopping: epochs without a better validation loss before training stops (best weights kept)."""
    validation_folds: int = 5
    """One of this many question folds of the training questions is the early-stopping validation set."""

    def __post_init__(self) -> None:
        check_config(self, hidden=at_least(1), dropout=between(0, 1, high_open=True), heads=at_least(1),
                     lr=above(0), weight_decay=at_least(0), batch_size=at_least(1), max_epochs=at_least(1),
                     patience=at_least(1), validation_folds=at_least(2))


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
    """``checkpoint``: z-score every feature over the anchor questions at its own checkpoint;
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
    """Question-grouped folds of the cross-validation that chooses the L2 strength."""
    min_questions: int = 8
    """Fewest labelled training questions to train on."""
    min_per_class: int = 2
    """Fewest training questions with a success (c > 0), and with a failure (c < n), to train on (>= 2:
    folds are stratified so that every fold's training part keeps both classes)."""
    ece_bins: int = 10
    """Bins of the expected calibration error."""
    net: NetConfig = field(default_factory=NetConfig)
    """Training settings of the MLP and attention probes."""
    seed: int = 0
    """Seed of the projection, the splits and the torch probes' training."""

    def __post_init__(self) -> None:
        check_config(self, layers=each(at_least(0)), project_dim=at_least(1),
                     heldout_fraction=between(0, 1, high_open=True),
                     c_grid=Rule("non-empty, every value > 0", lambda cs: bool(cs) and min(cs) > 0),
                     cv_folds=at_least(2), min_questions=Rule(">= cv_folds", lambda v: v >= self.cv_folds),
                     min_per_class=at_least(2), ece_bins=at_least(1), seed=at_least(0))
        object.__setattr__(self, "c_grid", tuple(float(c) for c in self.c_grid))

    def to_dict(self) -> dict[str, Any]:
        state = dataclasses.asdict(self)
        state["layers"] = None if self.layers is None else list(self.layers)
        state["c_grid"] = list(self.c_grid)
        return state

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ProbeConfig:
        return cls(**{**state, "net": NetConfig(**state["net"])})
