"""Monitor configuration, the training budget, and the training context passed at each checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from evalcast.stats.token_stats import StatsConfig
from evalcast.validation import above, at_least, between, check_config, each


@dataclass(frozen=True)
class MonitorConfig:
    """How the monitor evaluates."""

    max_tokens: int = 16384
    """Padded tokens per forward batch (bounds the activation memory of the proxy pass)."""
    pad_multiple: int = 64
    """Sequence lengths are padded up to a multiple of this (a bounded set of shapes)."""
    max_batch_size: int = 256
    """Most sequences in one forward batch."""
    stats: StatsConfig = StatsConfig()
    """The statistics computed (top-k cut-offs, logit chunk size)."""
    strict: bool = False
    """Re-raise evalcast's own errors instead of logging them and skipping the save (tests, debugging)."""
    timeout_s: float = 600.0
    """How long rank 0 waits for the other ranks' results before skipping the save."""
    tracker_timeout_s: float = 30.0
    """Longest wait for one tracker call (W&B, MLflow ...); a tracker that hangs longer is skipped until it
    answers, and training goes on (the run directory keeps every metric)."""
    save_examples: bool = True
    """Keep per-example statistics of every checkpoint in the run directory."""
    save_features: bool = False
    """Keep the anchor questions' hidden-state features at every checkpoint (by default only at anchors,
    which the probe needs to resume); for offline studies of the probe."""
    progress: bool = False
    """Show progress bars during evaluation."""

    def __post_init__(self) -> None:
        check_config(self, max_tokens=at_least(1), pad_multiple=at_least(1), max_batch_size=at_least(1),
                     timeout_s=above(0), tracker_timeout_s=above(0))


@dataclass(frozen=True)
class Budget:
    """The training budget: the horizon forecasts extend to (framework callbacks fill it from the trainer)."""

    max_steps: int | None = None
    """Optimizer steps of the whole run."""
    max_tokens: int | None = None
    """Training tokens of the whole run (the preferred axis when tokens seen are reported)."""
    lr: list[float] | None = None
    """The learning rate at every step 0..max_steps, when the schedule is known in advance (it lets
    forecasts model warm-up and decay)."""

    def __post_init__(self) -> None:
        check_config(self, max_steps=at_least(1), max_tokens=at_least(1), lr=each(between(0, math.inf, high_open=True)))


@dataclass(frozen=True)
class TrainingContext:
    """What the training loop knows at a checkpoint (everything but ``step`` is optional).

    Built by the framework callbacks at every checkpoint, or by a plain loop through
    :meth:`Monitor.step <evalcast.Monitor.step>`'s keyword arguments.
    """

    step: int
    tokens_seen: int | None = None
    """Training tokens consumed so far (the preferred forecast axis)."""
    epoch: float | None = None
    max_steps: int | None = None
    """The training budget, when the loop knows it here: replaces ``Budget.max_steps`` from this checkpoint on."""
    max_tokens: int | None = None
    """As ``max_steps``, in training tokens."""
    autocast_dtype: torch.dtype | None = None
    """The dtype training autocasts to (``torch.bfloat16`` under bf16 mixed precision)."""
    train: dict[str, float] = field(default_factory=dict)
    """Scalar training figures to keep beside the proxies (``loss``, ``lr``, ``grad_norm``, ``val_loss``)."""
