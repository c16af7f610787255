"""What the forecasters are given: the run's checkpoints, its LR schedule, and per-task history.

The types hold the caller's arrays as given and never validate on construction: validation happens inside
:func:`evalcast.forecast.forecast_task`, which turns bad input into a refusal instead of an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True, eq=False)
class Schedule:
    """The trainer's whole learning-rate schedule, known in advance.

    ``lr[s]`` is the learning rate of optimiser step ``s`` for every step from 0 to the final step of the
    budget. ``x_of_step[s]`` (same length, optional) is the compute axis (e.g. tokens seen) after step
    ``s``; without it x is taken as linear in steps between checkpoints.
    """

    lr: ArrayLike
    x_of_step: ArrayLike | None = None


@dataclass(frozen=True, eq=False)
class Checkpoints:
    """The checkpoints seen so far.

    ``x``: compute axis per checkpoint (tokens seen when known, else steps), strictly increasing.
    ``step``: optimiser step per checkpoint. ``x_end``: the training budget on the same axis.
    ``schedule``: the LR schedule, which enables the annealing law and phase detection.
    """

    x: ArrayLike
    step: ArrayLike
    x_end: float
    schedule: Schedule | None = None


@dataclass(frozen=True, eq=False)
class Anchor:
    """A real (generative) evaluation at checkpoint ``index``.

    ``accuracy`` is the benchmark accuracy or mean pass@1 over ``n_questions`` questions;
    ``per_question`` optionally maps question id → pass@1 in [0, 1] (used for question resampling in the
    bootstrap and for difficulty clusters).
    """

    index: int
    accuracy: float
    n_questions: int
    per_question: Mapping[str, float] | None = None


@dataclass(frozen=True, eq=False)
class TaskInputs:
    """One task's history.

    ``proxies``: candidate proxy series, name → value per checkpoint (NaN where missing); the direction
    of each is learned from the data. ``losses``: loss series for the loss-based baseline (``val_loss``,
    a task BPB, ``train_loss``; the first present in :data:`LOSS_PREFERENCE` order is used).
    ``probe_accuracy``: the probe's predicted pass@1 per checkpoint (NaN where missing);
    ``probe_per_question``: question id → predicted pass@1 per checkpoint. ``chance`` is the floor g
    (0 for open generation, 1/K for K-way multiple choice), ``ceiling`` the ceiling u.
    """

    name: str
    checkpoints: Checkpoints
    proxies: Mapping[str, ArrayLike]
    anchors: Sequence[Anchor] = ()
    losses: Mapping[str, ArrayLike] = field(default_factory=dict)
    probe_accuracy: ArrayLike | None = None
    probe_per_question: Mapping[str, ArrayLike] | None = None
    chance: float = 0.0
    ceiling: float = 1.0


#: Loss series used by the loss-based baseline, in order of preference.
LOSS_PREFERENCE = ("val_loss", "task_bpb", "bpb", "train_loss")
