"""Rank 0's side of forecasts: the run history as forecaster inputs, and forecasts as metrics and charts.

Each task (and ``all``) gets a :class:`~evalcast.forecast.TaskInputs` built from the history: the x-axis
is tokens seen when every checkpoint reports them and the budget is known in tokens (else steps), the
horizon is the training budget, the candidate proxies are this task's metrics, the anchors its real
pass@1, and the probe's per-checkpoint and per-question predictions densify the accuracy fit and the
difficulty clusters. Without a known budget there is no horizon and no forecast (the reason is logged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalcast.forecast import Anchor, Checkpoints, ForecastConfig, Schedule, TaskForecast, TaskInputs
from evalcast.forecast.results import refused
from evalcast.monitor.config import Budget
from evalcast.proxy.aggregate import metric_name
from evalcast.trackers.base import Curve

DEFAULT_PROXIES = (
    "nll", "prob", "entropy", "top1", "top5", "log_rank", "recip_rank", "margin", "excess_surprisal", "bpb",
    "greedy_match", "answer_match", "pair_accuracy", "nll.rarity", "top1.rarity", "nll.answer", "top1.answer",
    "prob.traj", "top1.late",
)


@dataclass(frozen=True)
class ForecastSettings:
    """What the monitor forecasts.

    proxies: candidate proxy metrics (per task; the forecaster picks one by rolling backtest).
    chance / ceiling: per-task floor and ceiling of accuracy (default 0 and 1: open generation).
    every: forecast at every ``every``-th evaluation (forecasts cost about a second per task).
    """

    config: ForecastConfig = field(default_factory=ForecastConfig)
    proxies: tuple[str, ...] = DEFAULT_PROXIES
    chance: Mapping[str, float] = field(default_factory=dict)
    ceiling: Mapping[str, float] = field(default_factory=dict)
    every: int = 1


def build_inputs(records: Sequence[dict[str, Any]], groups: Sequence[str], budget: Budget,
                 predictions: Mapping[int, Mapping[str, float]], groups_of: Mapping[str, Sequence[str]],
                 settings: ForecastSettings) -> tuple[list[TaskInputs], str]:
    """Forecaster inputs per group from the ok records (oldest first); or ``([], reason)``.

    ``groups_of`` maps each probe question to its groups (``all``, task, domain prefixes).
    """
    if not records:
        return [], "no evaluated checkpoint yet"
    steps = np.array([r["step"] for r in records], dtype=float)
    tokens = [r.get("tokens_seen") for r in records]
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
    inputs = []
    for group in groups:
        def series(metric: str, group: str = group) -> np.ndarray:
            return np.array([_num(r["metrics"].get(metric_name(group, metric))) for r in records])

        proxies = {name: series(name) for name in settings.proxies}
        proxies = {k: v for k, v in proxies.items() if np.isfinite(v).any()}
        losses = {"task_bpb": series("bpb"),
                  "train_loss": np.array([_num(r.get("train", {}).get("loss")) for r in records]),
                  "val_loss": np.array([_num(r.get("train", {}).get("val_loss")) for r in records])}
        mine = [q for q, member_of in groups_of.items() if group in member_of]
        anchors = [Anchor(index=i, accuracy=r["metrics"][metric_name(group, "pass@1_anchor")],
                          n_questions=sum(1 for q in r["anchor"]["per_question"] if q in mine),
                          per_question={q: p for q, p in r["anchor"]["per_question"].items() if q in mine})
                   for i, r in enumerate(records)
                   if "anchor" in r and metric_name(group, "pass@1_anchor") in r["metrics"]]
        per_question = {q: np.array([_num(predictions.get(r["step"], {}).get(q)) for r in records]) for q in mine}
        inputs.append(TaskInputs(
            name=group, checkpoints=checkpoints, proxies=proxies,
            losses={k: v for k, v in losses.items() if np.isfinite(v).any()}, anchors=anchors,
            probe_accuracy=series("pass@1_probe"),
            probe_per_question=per_question if any(np.isfinite(v).any() for v in per_question.values()) else None,
            chance=settings.chance.get(group, 0.0), ceiling=settings.ceiling.get(group, 1.0)))
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


def forecast_curve(group: str, result: TaskForecast, x_name: str) -> Curve | None:
    """The forecast fan (line, 80% and 95% bands) with the observed anchors, for trackers."""
    curve = result.forecast.curve
    if not result.forecast.ok or curve is None:
        return None
    series = {"forecast": curve.mean, **{k: getattr(curve, k) for k in ("lo80", "hi80", "lo95", "hi95")
                                        if getattr(curve, k)}}
    observed_x, observed_y = (), ()
    if result.data is not None and result.data.anchor_index:
        observed_x = tuple(result.data.x[i] for i in result.data.anchor_index)
        observed_y = result.data.anchor_accuracy
    title = f"{group}: pass@1 forecast {result.forecast.final:.3f} (proxy {result.proxy.name if result.proxy else '?'})"
    return Curve(x=curve.x, series=series, x_name=x_name, observed_x=observed_x, observed_y=observed_y,
                 title=title, meta={"current_x": result.x_last, "x_end": result.x_end})


def forecast_rows(results: Mapping[str, TaskForecast]) -> list[list[Any]]:
    """One row per group for the tracker table ``evalcast/forecasts``."""
    rows = []
    for group, r in results.items():
        f = r.forecast
        lo, hi = f.interval80 or (math.nan, math.nan)
        rows.append([group, r.status, f.final if f.final is not None else math.nan, lo, hi,
                     r.proxy.name if r.proxy else "", r.reason, r.message])
    return rows


FORECAST_COLUMNS = ("group", "status", "final", "lo80", "hi80", "proxy", "reason", "message")


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not None else math.nan
