"""Reference runs: the same task in other runs (pilots, other sizes, earlier runs on the same questions).

A :class:`ReferenceRun` is what the forecaster knows of another run: its history of this task as a
:class:`~evalcast.forecast.TaskInputs` (finished or not) and, when known, its non-embedding parameter
count. :func:`reference_problems` lists what makes references unusable for a target (another task,
another compute axis, another floor or ceiling); the forecast refuses with ``reference_mismatch`` then.

A proxy is compared across runs on one loss-like scale, fixed by rule so that every run maps it the same
way (:func:`proxy_scale`): a falling positive proxy as is; a rising one in (0, 1] (a probability, top-1
agreement) as ``−log m``; a rising one in [−1, 1) (a margin) as ``1 − m``. Others have no scale shared
across runs and are not used with references.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy.stats import spearmanr

from evalcast.forecast.fit import moving_average
from evalcast.forecast.inputs import Checkpoints, TaskInputs

ScaleKind = Literal["identity", "neg_log", "one_minus"]


@dataclass(frozen=True, eq=False)
class ReferenceRun:
    """The same task in another run: its history, and its non-embedding parameter count when known."""

    name: str
    task: TaskInputs
    n_params: float | None = None


def truncate(inputs: TaskInputs, fraction: float) -> TaskInputs:
    """``inputs`` as seen when ``fraction`` of the budget had been trained (same budget and schedule)."""
    ck = inputs.checkpoints
    x = np.asarray(ck.x, dtype=float).reshape(-1)
    n = int(np.sum(x <= fraction * float(ck.x_end) * (1 + 1e-12)))

    def cut(v: object) -> np.ndarray:
        return np.asarray(v)[:n]

    return replace(inputs, checkpoints=Checkpoints(x[:n], cut(ck.step), ck.x_end, ck.schedule),
                   anchors=[a for a in inputs.anchors if int(a.index) < n],
                   proxies={k: cut(v) for k, v in dict(inputs.proxies or {}).items()},
                   losses={k: cut(v) for k, v in dict(inputs.losses or {}).items()},
                   probe_accuracy=None if inputs.probe_accuracy is None else cut(inputs.probe_accuracy),
                   probe_per_question=None if inputs.probe_per_question is None else
                   {q: cut(v) for q, v in inputs.probe_per_question.items()})


def compute_axis(inputs: TaskInputs) -> str:
    """"steps" when the compute axis is the optimiser step at every checkpoint, else "tokens"."""
    ck = inputs.checkpoints
    x = np.asarray(ck.x, dtype=float).reshape(-1)
    step = np.asarray(ck.step, dtype=float).reshape(-1)
    return "steps" if x.shape == step.shape and np.allclose(x, step) else "tokens"


def reference_problems(target: TaskInputs, references: Sequence[ReferenceRun]) -> list[str]:
    """Why ``references`` cannot serve ``target`` (empty when they can): each problem names the run and field."""
    problems = []
    names = [str(getattr(r, "name", "?")) for r in references]
    if len(set(names)) != len(names):
        problems.append(f"reference run names must be unique, got {names}")
    axis = compute_axis(target)
    for ref, name in zip(references, names):
        task = getattr(ref, "task", None)
        if not isinstance(task, TaskInputs):
            problems.append(f"reference '{name}': .task must be a TaskInputs, got {type(task).__name__}")
            continue
        if task.name != target.name:
            problems.append(f"reference '{name}' is task '{task.name}', not '{target.name}': references must be "
                            "the same task (matched by name) in other runs")
            continue
        if compute_axis(task) != axis:
            problems.append(f"reference '{name}' measures compute in {compute_axis(task)} but this run in {axis}: "
                            "give both checkpoints.x in tokens seen (or both in steps)")
        if (float(task.chance), float(task.ceiling)) != (float(target.chance), float(target.ceiling)):
            problems.append(f"reference '{name}' has chance/ceiling {task.chance}/{task.ceiling}, this run "
                            f"{target.chance}/{target.ceiling}: the same task must have the same floor and ceiling")
        if ref.n_params is not None and not (np.isfinite(float(ref.n_params)) and float(ref.n_params) > 0):
            problems.append(f"reference '{name}': n_params must be a positive number or None")
    return problems


def _direction(raw: np.ndarray, x: np.ndarray, window: int) -> float:
    """+1 rising, −1 falling, 0 no clear trend (|Spearman| < 0.5) over checkpoints."""
    ok = np.isfinite(raw)
    if ok.sum() < 4:
        return 0.0
    sm = moving_average(raw, window)[ok]
    rho = spearmanr(x[ok], sm).statistic if np.ptp(sm) > 0 else 0.0
    return float(np.sign(rho)) if np.isfinite(rho) and abs(rho) >= 0.5 else 0.0


def proxy_scale(series: Sequence[tuple[np.ndarray, np.ndarray]], window: int) -> ScaleKind | None:
    """The loss-like scale of a proxy from ``(values, x)`` of several runs; None if they disagree or it has none."""
    dirs = [_direction(v, x, window) for v, x in series]
    clear = [d for d in dirs if d != 0]
    if not clear or len(set(clear)) > 1:
        return None
    values = np.concatenate([v[np.isfinite(v)] for v, _ in series])
    if clear[0] < 0:
        return "identity" if values.size and float(np.min(values)) > 0 else None
    if values.size and float(np.min(values)) > 0 and float(np.max(values)) <= 1:
        return "neg_log"
    if values.size and float(np.min(values)) >= -1 and float(np.max(values)) < 1:
        return "one_minus"
    return None


def to_scale(kind: ScaleKind, raw: np.ndarray) -> np.ndarray:
    """The proxy on its loss-like scale (NaN where undefined or not positive)."""
    raw = np.asarray(raw, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = raw if kind == "identity" else (-np.log(raw) if kind == "neg_log" else 1.0 - raw)
    return np.where(np.isfinite(y) & (y > 0), y, np.nan)
