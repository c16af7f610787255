"""Learning-rate schedule: annealing areas, phases and the step ↔ compute mapping.

Annealing areas (Tissue et al. 2024, "Scaling Law with Learning Rate Annealing", arXiv 2408.11029):

* ``S1(s) = Σ_{i≤s} η_i``, the forward area (area under the LR curve);
* ``S2(s) = Σ_{i≤s} m_i`` with the annealing momentum ``m_i = λ·m_{i−1} + (η_{i−1} − η_i)``, ``m_0 = 0``
  and decay factor ``λ`` (0.999 by default, the value of the paper and of public reproductions).

The law ``L(s) = L0 + A·S1^(−α) − C·S2`` is verified here only in form (the abstract): the full text was
not available. Our choices, documented: η is divided by its peak so that S1 counts "peak-LR steps" and S2
is unitless; the LR increments of the warmup (before the peak) are left out of S2, since a rising LR there
is not annealing and the first checkpoints are skipped by the fit anyway. A public reproduction starts the
momentum at ``m_0 = η_0``, which adds a spurious geometric term; we start it at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.signal import lfilter

PhaseName = Literal["warmup", "stable", "decay", "cooldown"]


@dataclass(frozen=True)
class Phase:
    """A contiguous run of optimiser steps ``[start, end)`` in one LR phase."""

    name: PhaseName
    start: int
    end: int


def annealing_areas(lr: np.ndarray, decay: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
    """``(S1, S2)`` at every step of the schedule ``lr`` (see the module docstring)."""
    lr = np.asarray(lr, dtype=float)
    peak = float(np.max(lr))
    eta = lr / peak if peak > 0 else np.zeros_like(lr)
    s1 = np.cumsum(eta)
    drop = np.zeros_like(eta)
    drop[1:] = eta[:-1] - eta[1:]
    drop[: int(np.argmax(eta)) + 1] = 0.0
    momentum = lfilter([1.0], [1.0, -decay], drop)
    return s1, np.cumsum(momentum)


def lr_phases(lr: np.ndarray, rtol: float = 0.01, window: float = 0.01) -> tuple[Phase, ...]:
    """Split a schedule into warmup / stable / decay / cooldown phases.

    Warmup runs up to the peak. After it, a step is *decay* when the LR falls by more than ``rtol``
    (relative) over the next ``window`` fraction of the schedule, else *stable*. A decay that follows a
    stable stretch at least as long as itself is a *cooldown* (the WSD pattern).
    """
    lr = np.asarray(lr, dtype=float)
    n = len(lr)
    if n == 0:
        return ()
    peak_i = int(np.argmax(lr))
    w = max(1, round(window * n))
    ahead = lr[np.minimum(np.arange(n) + w, n - 1)]
    falling = (lr - ahead) > rtol * np.maximum(lr, 1e-300)
    labels = ["warmup" if i < peak_i else ("decay" if falling[i] else "stable") for i in range(n)]
    phases: list[Phase] = []
    start = 0
    for i in range(1, n + 1):
        if i == n or labels[i] != labels[start]:
            phases.append(Phase(labels[start], start, i))  # type: ignore[arg-type]
            start = i
    for j in range(1, len(phases)):
        prev, cur = phases[j - 1], phases[j]
        if cur.name == "decay" and prev.name == "stable" and prev.end - prev.start >= cur.end - cur.start:
            phases[j] = Phase("cooldown", cur.start, cur.end)
    return tuple(phases)


def phase_at(phases: tuple[Phase, ...], step: int) -> PhaseName | None:
    """Name of the phase containing ``step`` (None outside the schedule)."""
    for p in phases:
        if p.start <= step < p.end:
            return p.name
    return None


def step_of_x(x: np.ndarray, ckpt_x: np.ndarray, ckpt_step: np.ndarray, x_end: float, final_step: int,
              x_of_step: np.ndarray | None = None) -> np.ndarray:
    """Optimiser step (fractional) at compute values ``x``.

    Uses the schedule's own step → x mapping when given, else interpolates linearly through the
    checkpoints and ``(x_end, final_step)``, extrapolating from the origin before the first checkpoint.
    """
    if x_of_step is not None:
        xs = np.asarray(x_of_step, dtype=float)
        return np.interp(x, xs, np.arange(len(xs), dtype=float))
    xp = np.concatenate([[0.0], ckpt_x, [x_end]])
    sp = np.concatenate([[0.0], ckpt_step, [float(final_step)]])
    keep = np.concatenate([[True], np.diff(xp) > 0])
    return np.interp(x, xp[keep], sp[keep])


def areas_at(steps: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S1 and S2 interpolated at (fractional) steps."""
    grid = np.arange(len(s1), dtype=float)
    return np.interp(steps, grid, s1), np.interp(steps, grid, s2)
