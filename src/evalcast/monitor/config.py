"""Monitor configuration and the training context passed at each checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from evalcast.stats.token_stats import StatSpec


@dataclass(frozen=True)
class MonitorConfig:
    """How the monitor evaluates.

    max_tokens: padded tokens per forward batch (bounds activation memory of the proxy pass).
    pad_multiple: sequence lengths are padded up to a multiple of this (a bounded set of shapes).
    stats: statistics to compute (top-k cut-offs, logit chunk size).
    strict: re-raise evalcast's own errors instead of logging them and skipping the save.
    timeout_s: how long rank 0 waits for the other ranks' results before skipping the save.
    save_examples: keep per-example statistics of every checkpoint in the run directory.
    save_features: keep the probe questions' hidden-state features of every checkpoint (by default only
        anchors' are kept: the probe needs them to resume); for offline studies of the probe.
    progress: show progress bars during evaluation.
    """

    max_tokens: int = 16384
    pad_multiple: int = 64
    max_batch_size: int = 256
    stats: StatSpec = StatSpec()
    strict: bool = False
    timeout_s: float = 600.0
    save_examples: bool = True
    save_features: bool = False
    progress: bool = False


@dataclass(frozen=True)
class TrainingContext:
    """What the training loop knows at a checkpoint (everything but ``step`` is optional).

    tokens_seen: training tokens consumed so far (the preferred forecast axis).
    max_steps / max_tokens: the training budget, the horizon of forecasts.
    autocast_dtype: the dtype training autocasts to (``torch.bfloat16`` under bf16 mixed precision).
    train: scalar training figures to keep beside the proxies (loss, learning rate, grad norm).
    """

    step: int
    tokens_seen: int | None = None
    epoch: float | None = None
    max_steps: int | None = None
    max_tokens: int | None = None
    autocast_dtype: torch.dtype | None = None
    train: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """The training budget: the horizon forecasts extend to.

    max_steps: optimizer steps of the whole run; max_tokens: training tokens of the whole run (preferred
    axis when tokens seen are reported); lr: the learning rate at every step 0..max_steps, when the
    schedule is known in advance (it lets forecasts model warm-up and decay).
    """

    max_steps: int | None = None
    max_tokens: int | None = None
    lr: list[float] | None = None
