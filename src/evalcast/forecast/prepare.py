"""Validate a task's inputs and turn them into arrays: the compute axis and the accuracy points.

Anything malformed becomes a :class:`~evalcast.forecast.gates.Refusal` with ``invalid_input`` (for the
axis) or is dropped with a note (a single bad anchor or series), so a caller's mistake never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.gates import Reason, Refusal
from evalcast.forecast.inputs import Anchor, TaskInputs
from evalcast.forecast.schedule import Phase, annealing_areas, areas_at, lr_phases, phase_at, step_of_x


def as_series(values: object, n: int) -> np.ndarray | None:
    """A length-``n`` float array with non-finite entries as NaN, or None when it cannot be one."""
    try:
        arr = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    if arr.shape != (n,):
        return None
    return np.where(np.isfinite(arr), arr, np.nan)


@dataclass(frozen=True, eq=False)
class Axis:
    """The compute axis of a run, and the law's progress variables on it.

    ``t1`` is compute itself (power law) or the LR area S1 (annealing law); ``t2`` is the annealing area
    S2 divided by its value at the end of the budget (zeros without decay). ``grid`` runs from the first
    checkpoint to ``x_end``; ``*_grid`` are the progress variables there.
    """

    x: np.ndarray
    step: np.ndarray
    x_end: float
    law: str
    t1: np.ndarray
    t2: np.ndarray
    grid: np.ndarray
    t1_grid: np.ndarray
    t2_grid: np.ndarray
    phases: tuple[Phase, ...] = ()

    @property
    def fit_c(self) -> bool:
        """Whether the annealing term has anything to fit (the LR decays before the budget's end)."""
        return bool(np.any(self.t2_grid > 0))

    def phase_at_index(self, i: int) -> str | None:
        return phase_at(self.phases, round(float(self.step[i]))) if self.phases else None

    def truncated(self, stop: int) -> Axis:
        """The axis as it was when checkpoint ``stop − 1`` was the last one (same budget and grid)."""
        return Axis(self.x[:stop], self.step[:stop], self.x_end, self.law, self.t1[:stop], self.t2[:stop],
                    self.grid, self.t1_grid, self.t2_grid, self.phases)


def build_axis(inputs: TaskInputs, cfg: ForecastConfig) -> Axis:
    """Validate the checkpoints and schedule; choose the law (see the module docs of ``api``)."""
    ck = inputs.checkpoints
    try:
        x = np.asarray(ck.x, dtype=float).reshape(-1)
        step = np.asarray(ck.step, dtype=float).reshape(-1)
        x_end = float(ck.x_end)
    except (TypeError, ValueError) as exc:
        raise Refusal(Reason.INVALID_INPUT, f"checkpoints are not numeric ({exc})") from None
    if x.size == 0:
        raise Refusal(Reason.TOO_FEW_POINTS, "no checkpoints yet")
    if x.shape != step.shape:
        raise Refusal(Reason.INVALID_INPUT, f"checkpoints.x has {x.size} entries but checkpoints.step {step.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(step)) and np.isfinite(x_end)):
        raise Refusal(Reason.INVALID_INPUT, "checkpoints.x, checkpoints.step and x_end must be finite")
    if np.any(x <= 0) or np.any(np.diff(x) <= 0):
        raise Refusal(Reason.INVALID_INPUT, "checkpoints.x must be positive and strictly increasing "
                      "(tokens seen or steps, one value per checkpoint)")
    if x_end < x[-1]:
        raise Refusal(Reason.INVALID_INPUT, f"x_end={x_end:g} lies before the last checkpoint x={x[-1]:g}; "
                      "x_end is the training budget on the same axis as x")
    grid = np.linspace(x[0], x_end, cfg.curve_points) if x_end > x[0] else np.array([x[0]])
    lr = _schedule_lr(inputs)
    use_annealing = cfg.law == "annealing" or (cfg.law == "auto" and lr is not None)
    if cfg.law == "annealing" and lr is None:
        raise Refusal(Reason.INVALID_INPUT, "law='annealing' needs checkpoints.schedule with the LR at every step")
    if not use_annealing or lr is None:
        return Axis(x, step, x_end, "power", x, np.zeros_like(x), grid, grid, np.zeros_like(grid))
    if np.any(step < 0) or np.any(step > len(lr) - 1):
        raise Refusal(Reason.INVALID_INPUT, f"checkpoint steps must lie in [0, {len(lr) - 1}], the schedule's steps")
    s1, s2 = annealing_areas(lr, cfg.annealing_decay)
    x_of_step = _schedule_x(inputs, len(lr))
    grid_steps = step_of_x(grid, x, step, x_end, len(lr) - 1, x_of_step)
    t1, t2 = areas_at(step, s1, s2)
    t1g, t2g = areas_at(grid_steps, s1, s2)
    s2_end = float(s2[-1])
    scale = s2_end if s2_end > 0 else 1.0
    return Axis(x, step, x_end, "annealing", np.maximum(t1, 1e-12), t2 / scale, grid, np.maximum(t1g, 1e-12),
                t2g / scale, lr_phases(lr))


def _schedule_lr(inputs: TaskInputs) -> np.ndarray | None:
    sched = inputs.checkpoints.schedule
    if sched is None:
        return None
    try:
        lr = np.asarray(sched.lr, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise Refusal(Reason.INVALID_INPUT, "schedule.lr is not numeric") from None
    if lr.size < 2 or not np.all(np.isfinite(lr)) or np.any(lr < 0) or float(np.max(lr)) <= 0:
        raise Refusal(Reason.INVALID_INPUT, "schedule.lr must hold a finite, non-negative learning rate for "
                      "every step (at least 2 steps) and be positive somewhere")
    return lr


def _schedule_x(inputs: TaskInputs, n: int) -> np.ndarray | None:
    sched = inputs.checkpoints.schedule
    if sched is None or sched.x_of_step is None:
        return None
    xs = as_series(sched.x_of_step, n)
    if xs is None or np.any(~np.isfinite(xs)) or np.any(np.diff(xs) <= 0):
        raise Refusal(Reason.INVALID_INPUT, f"schedule.x_of_step must hold {n} finite, strictly increasing values")
    return xs


@dataclass(frozen=True, eq=False)
class AnchorTable:
    """Valid anchors as arrays, with per-question outcomes as a question × anchor matrix (NaN: not asked)."""

    index: np.ndarray
    acc: np.ndarray
    n: np.ndarray
    se: np.ndarray
    qids: tuple[str, ...]
    per_question: np.ndarray | None

    @property
    def size(self) -> int:
        return int(self.index.size)

    def subset(self, keep: np.ndarray) -> AnchorTable:
        pq = None if self.per_question is None else self.per_question[:, keep]
        return AnchorTable(self.index[keep], self.acc[keep], self.n[keep], self.se[keep], self.qids, pq)


def binomial_se(acc: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Binomial SE with the accuracy shrunk as (a·n + 1)/(n + 2), so that 0 and 1 keep a finite weight."""
    p = (acc * n + 1.0) / (n + 2.0)
    return np.sqrt(p * (1.0 - p) / n)


def build_anchors(anchors: object, n_ckpt: int) -> tuple[AnchorTable, list[str]]:
    """Valid anchors sorted by checkpoint (one per checkpoint, the last given wins) and notes on dropped ones."""
    notes: list[str] = []
    valid: dict[int, Anchor] = {}
    for a in list(anchors or ()):  # type: ignore[call-overload]
        try:
            i, acc, n = int(a.index), float(a.accuracy), int(a.n_questions)
        except (TypeError, ValueError, AttributeError):
            notes.append(f"dropped a malformed anchor: {a!r}")
            continue
        if not (0 <= i < n_ckpt and np.isfinite(acc) and 0.0 <= acc <= 1.0 and n > 0):
            notes.append(f"dropped anchor at checkpoint {i}: index must be in [0, {n_ckpt}), accuracy in [0, 1], "
                         "n_questions > 0")
            continue
        valid[i] = a
    order = sorted(valid)
    index = np.array(order, dtype=int)
    acc = np.array([float(valid[i].accuracy) for i in order])
    n = np.array([float(valid[i].n_questions) for i in order])
    qids, pq = _per_question([valid[i].per_question for i in order])
    return AnchorTable(index, acc, n, binomial_se(acc, n), qids, pq), notes


def _per_question(maps: list[Mapping[str, float] | None]) -> tuple[tuple[str, ...], np.ndarray | None]:
    if not maps or any(m is None or len(m) == 0 for m in maps):
        return (), None
    qids = tuple(sorted({str(q) for m in maps for q in m}))  # type: ignore[union-attr]
    pos = {q: k for k, q in enumerate(qids)}
    mat = np.full((len(qids), len(maps)), np.nan)
    for j, m in enumerate(maps):
        for q, v in m.items():  # type: ignore[union-attr]
            try:
                fv = float(v)
            except (TypeError, ValueError):
                continue
            if np.isfinite(fv) and 0.0 <= fv <= 1.0:
                mat[pos[str(q)], j] = fv
    return qids, mat


def probe_matrix(inputs: TaskInputs, n_ckpt: int) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The probe's per-question predictions as a question × checkpoint matrix (invalid rows dropped)."""
    pq = inputs.probe_per_question
    if not pq:
        return (), None
    rows, ids = [], []
    for q, values in pq.items():
        s = as_series(values, n_ckpt)
        if s is not None:
            rows.append(np.where((s >= 0) & (s <= 1), s, np.nan))
            ids.append(str(q))
    return (tuple(ids), np.array(rows)) if rows else ((), None)


def phase_flags(axis: Axis) -> list[str]:
    """Flags about the LR phase of the last checkpoint (fits across a cool-down need the annealing law)."""
    phase = axis.phase_at_index(len(axis.x) - 1)
    return [f"phase:{phase}"] if phase else []
