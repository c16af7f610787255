"""The forecast step of a checkpoint (rank 0): the run history as forecaster inputs, forecasts as metrics.

Each group (``all``, every task, and every domain group that is not exactly a task) gets a
:class:`~evalcast.forecast.TaskInputs` built from the history: the x axis is tokens seen when every
checkpoint reports them and the budget is known in tokens (else steps), the horizon is the training
budget, the candidate proxies are the group's metrics, the anchors its real pass@1, and the probe's
per-checkpoint and per-question predictions densify the accuracy fit and the difficulty clusters.
Without a known budget there is no horizon and no forecast (the reason is recorded). A group made only
of multiple-choice questions has its accuracy measured exactly at every save: every checkpoint is an
anchor (``ForecastConfig.choice_accuracy``), and its floor is the mean of 1/K unless ``chance`` gives one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from evalcast.errors import ErrorPolicy
from evalcast.forecast import (
    Anchor,
    Checkpoints,
    ForecastConfig,
    ReferenceSet,
    Schedule,
    TaskForecast,
    TaskInputs,
    forecast_run,
)
from evalcast.forecast.results import refused
from evalcast.monitor.config import Budget
from evalcast.monitor.evaluation import Evaluation
from evalcast.proxy.aggregate import GroupIndex, metric_name
from evalcast.proxy.choices import ChoiceGroup
from evalcast.runs.history import RunHistory, run_axis, series
from evalcast.runs.record import Record
from evalcast.trackers.curves import forecast_curve

FORECAST_COLUMNS = ("group", "status", "final", "lo80", "hi80", "proxy", "reason", "message")
FORECAST_TABLE = "evalcast/forecasts"


def forecast_groups(groups: GroupIndex, tasks: Sequence[str]) -> list[str]:
    """``all``, every task, and every domain group whose questions are not exactly a task's or all's."""
    members = groups.members
    seen = [frozenset(members[g].tolist()) for g in ["all", *tasks] if g in members]
    domains = [g for g in members if g.startswith("domain/") and frozenset(members[g].tolist()) not in seen]
    return ["all", *tasks, *domains]


def build_inputs(records: Sequence[Record], groups: Sequence[str], budget: Budget,
                 predictions: Mapping[int, Mapping[str, float]], groups_of: Mapping[str, Sequence[str]],
                 config: ForecastConfig, choice: Mapping[str, ChoiceGroup] | None = None
                 ) -> tuple[list[TaskInputs], str]:
    """Forecaster inputs per group from the ok records (oldest first); or ``([], reason)``.

    ``groups_of`` maps each anchor question to its groups (``all``, task, domain prefixes); ``choice`` the
    groups of multiple-choice questions only.
    """
    choice = choice or {}
    if not records:
        return [], "no evaluated checkpoint yet"
    steps = np.array([r.step for r in records], dtype=float)
    tokens = [r.tokens_seen for r in records]
    per_step = (tokens[-1] / steps[-1]) if all(tokens) and steps[-1] > 0 else None
    if per_step is not None and (budget.max_tokens or budget.max_steps):
        x = np.array(tokens, dtype=float)
        x_end = float(budget.max_tokens or budget.max_steps * per_step)
    elif budget.max_steps:
        x, x_end, per_step = steps, float(budget.max_steps), None
    else:
        return [], "the training budget is unknown (give Monitor(budget=Budget(max_steps=... or max_tokens=...)))"
    schedule = None
    if budget.lr:
        lr = np.asarray(budget.lr, dtype=float)
        schedule = Schedule(lr=lr, x_of_step=None if per_step is None else np.arange(len(lr)) * per_step)
    checkpoints = Checkpoints(x=x, step=steps, x_end=x_end, schedule=schedule)
    losses = {"train_loss": np.array([r.train_value("loss") for r in records]),
              "val_loss": np.array([r.train_value("val_loss") for r in records])}
    inputs = []
    for group in groups:
        proxies = {name: series(records, group, name) for name in config.proxies}
        proxies = {k: v for k, v in proxies.items() if np.isfinite(v).any()}
        group_losses = {"task_bpb": series(records, group, "bpb"), **losses}
        mine = [q for q, member_of in groups_of.items() if group in member_of]
        floor = config.chance.get(group, choice[group].chance if group in choice else 0.0)
        if group in choice:
            anchors = [Anchor(index=i, accuracy=r.metrics[metric_name(group, config.choice_accuracy)],
                              n_questions=len(choice[group].ids))
                       for i, r in enumerate(records) if r.has(group, config.choice_accuracy)]
        else:
            anchors = [Anchor(index=i, accuracy=r.metrics[metric_name(group, "pass@1_anchor")],
                              n_questions=sum(1 for q in r.anchor.per_question if q in mine),
                              per_question={q: p for q, p in r.anchor.per_question.items() if q in mine})
                       for i, r in enumerate(records) if r.anchor is not None and r.has(group, "pass@1_anchor")]
        per_question = {q: np.array([predictions.get(r.step, {}).get(q, math.nan) for r in records], dtype=float)
                        for q in mine}
        inputs.append(TaskInputs(
            name=group, checkpoints=checkpoints, proxies=proxies,
            losses={k: v for k, v in group_losses.items() if np.isfinite(v).any()}, anchors=anchors,
            probe_accuracy=series(records, group, "pass@1_probe"),
            probe_per_question=per_question if any(np.isfinite(v).any() for v in per_question.values()) else None,
            chance=floor, ceiling=config.ceiling.get(group, 1.0)))
    return inputs, ""


def refused_everywhere(groups: Sequence[str], reason: str, message: str) -> dict[str, TaskForecast]:
    """The same refusal for every group (e.g. no training budget, so no horizon)."""
    return {g: TaskForecast(task=g, status="refused", reason=reason, message=message, x_end=math.nan,
                            x_last=math.nan, forecast=refused("evalcast", reason, message)) for g in groups}


def forecast_metrics(group: str, result: TaskForecast) -> dict[str, float]:
    """Scalars of one group's forecast: status, final value and intervals, each baseline's final value."""
    out = {metric_name(group, "forecast_status"): 1.0 if result.status == "ok" else 0.0}
    main = result.forecast
    if main.ok and main.final is not None:
        out[metric_name(group, "forecast_final")] = main.final
        for label, interval in (("80", main.interval80), ("95", main.interval95)):
            if interval:
                out[metric_name(group, f"forecast_lo{label}")] = interval[0]
                out[metric_name(group, f"forecast_hi{label}")] = interval[1]
    for name, baseline in result.baselines.items():
        if baseline.ok and baseline.final is not None:
            out[metric_name(group, f"forecast_final.{name}")] = baseline.final
    return out


def forecast_rows(results: Mapping[str, TaskForecast]) -> list[list[Any]]:
    """One row per group for the tracker table ``evalcast/forecasts``."""
    rows = []
    for group, r in results.items():
        f = r.forecast
        lo, hi = f.interval80 or (math.nan, math.nan)
        rows.append([group, r.status, f.final if f.final is not None else math.nan, lo, hi,
                     r.proxy.name if r.proxy else "", r.reason, r.message])
    return rows


class ForecastStep:
    """Forecasts every group at every ``config.every``-th evaluation; results go into the record, the
    metrics (status, final value, intervals, baselines), a fan chart per published group and a table."""

    name = "forecast"

    def __init__(self, config: ForecastConfig, groups: Sequence[str], groups_of: Mapping[str, Sequence[str]],
                 choice: Mapping[str, ChoiceGroup] | None = None, policy: ErrorPolicy = ErrorPolicy(),
                 references: Callable[[Sequence[str]], Mapping[str, ReferenceSet]] | None = None) -> None:
        self.config, self.groups, self.groups_of, self.policy = config, list(groups), groups_of, policy
        self.choice = dict(choice or {})
        self.references = references
        """Prepared reference runs per group (:class:`evalcast.monitor.saved.References`), when given."""

    def due(self, history: RunHistory) -> bool:
        return len(history.records()) % self.config.every == 0

    def run(self, evaluation: Evaluation, history: RunHistory, budget: Budget, n_params: float | None = None) -> None:
        record = evaluation.record
        assert record is not None
        records = [*(r for r in history.before(record.step) if r.ok), record]
        inputs, reason = build_inputs(records, self.groups, budget, history.predictions(), self.groups_of,
                                      self.config, self.choice)
        if inputs:
            references = self.references(self.groups) if self.references is not None else None
            results = forecast_run(inputs, self.config, references, n_params, policy=self.policy)
        else:
            results = refused_everywhere(self.groups, "no_budget", reason)
        x_name = run_axis(records)[1]
        for group, result in results.items():
            evaluation.metrics.update(forecast_metrics(group, result))
            curve = forecast_curve(group, result, x_name)
            if curve is not None:
                evaluation.curves[metric_name(group, "forecast")] = curve
        record.forecasts = dict(results)
        evaluation.tables[FORECAST_TABLE] = (FORECAST_COLUMNS, forecast_rows(results))
