"""A ladder run's history as forecaster inputs, cut at a save, with the ground truth as anchors.

Anchors are the *true* pass@1 (all ground-truth questions, per question included) at the anchor schedule's
saves (every ``anchor_every``-th save, the first included) up to the cut; a finished run used as a reference
also has its last save as an anchor (its final value, which the references' prior and pilot ratio need).
The online probe's predictions are kept. Inputs come from ``evalcast.monitor.forecast_step.build_inputs``
with the run's budget and LR schedule (from its :class:`RunSpec`), exactly as the monitor builds them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from benchmarks.ladder.config import Preset
from benchmarks.ladder.data import lr_lambda
from benchmarks.ladder.runs import Run
from evalcast.forecast import ForecastConfig, TaskInputs
from evalcast.monitor import Budget
from evalcast.monitor.forecast_step import build_inputs
from evalcast.proxy.aggregate import metric_name, record_groups
from evalcast.runs import AnchorSummary, Record, RunHistory, RunStore
from evalcast.tasks import get_task


def cut_at(run: Run, horizon: float) -> int:
    """Saves with step ≤ ``horizon`` of the budget."""
    return int(np.searchsorted(run.steps, horizon * run.spec.steps + 1e-9, side="right"))


def anchor_records(run: Run, cut: int, every: int, last: bool = False) -> list[Record]:
    """The first ``cut`` records, their anchors replaced by the ground truth on the anchor schedule (and at the
    last of them when ``last``)."""
    groups_of = {q: record_groups(t, get_task(t).domain) for q, t in zip(run.ids, run.tasks)}
    out = []
    for k, record in enumerate(run.records[:cut]):
        metrics = {key: v for key, v in record.metrics.items() if not key.endswith("/pass@1_anchor")}
        r = dataclasses.replace(record, metrics=metrics, anchor=None)
        if k % every == 0 or (last and k == cut - 1):
            per_question = dict(zip(run.ids, run.truth[k].tolist()))
            r.anchor = AnchorSummary(questions=len(per_question), per_question=per_question)
            by_group: dict[str, list[float]] = {}
            for q, value in per_question.items():
                for g in groups_of[q]:
                    by_group.setdefault(g, []).append(value)
            r.metrics.update({metric_name(g, "pass@1_anchor"): float(np.mean(v)) for g, v in by_group.items()})
        out.append(r)
    return out


def budget_of(run: Run, preset: Preset) -> Budget:
    """The run's budget and LR schedule, from its spec (the v2 run directories do not record them)."""
    schedule = lr_lambda(run.spec, preset)
    return Budget(max_steps=run.spec.steps, lr=[preset.lr * schedule(s) for s in range(run.spec.steps + 1)])


def run_inputs(run: Run, preset: Preset, cut: int, groups: Sequence[str], config: ForecastConfig,
               last_anchor: bool = False) -> list[TaskInputs]:
    """Forecaster inputs of ``groups`` from the first ``cut`` saves."""
    records = anchor_records(run, cut, preset.anchor_every, last_anchor)
    predictions = RunHistory(RunStore(run.path / "evalcast")).predictions()
    groups_of = {q: record_groups(t, get_task(t).domain) for q, t in zip(run.ids, run.tasks)}
    inputs, reason = build_inputs(records, list(groups), budget_of(run, preset), predictions, groups_of, config)
    if not inputs:
        raise RuntimeError(f"{run.name}: no forecast inputs: {reason}")
    out = []
    for task_inputs in inputs:
        probe = {q: v for q, v in (task_inputs.probe_per_question or {}).items() if np.isfinite(v).any()}
        out.append(dataclasses.replace(task_inputs, probe_per_question=probe or None))
    return out
