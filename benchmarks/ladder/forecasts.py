"""Issue 5: forecasts of the final true pass@1 made at 10%, 25% and 50% of training, scored at the end.

For each run, group (``all`` and each task) and horizon h, the history is cut at the last save with
step ≤ h·budget. Anchors are the *true* pass@1 (all ground-truth questions, per question included) at the
anchor schedule's saves (every ``anchor_every``-th save, the first included) up to the cut; the online
probe's predictions of those saves are kept. Inputs come from ``evalcast.monitor.forecast_step.build_inputs``
with the run's budget and LR schedule, exactly as the monitor builds them, and ``forecast_task`` gives
evalcast's forecast and every baseline. Refusals publish no number: they are counted, not scored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ladder import refforecasts
from benchmarks.ladder.config import TASKS, Preset
from benchmarks.ladder.measures import nanmean
from benchmarks.ladder.refcases import cut_at, run_inputs
from benchmarks.ladder.runs import Run
from evalcast.forecast import ForecastConfig, TaskForecast, forecast_task

METHODS = ("evalcast", "compute_sigmoid", "compute_power", "loss_twostep", "last_value")
GROUPS = ("all", *TASKS)
FAN_RUNS = ("L-A", "M-A-const", "M-A-wsd", "M-A-plateau")


def forecast_at(run: Run, preset: Preset, horizon: float, config: ForecastConfig) -> dict[str, TaskForecast]:
    """Every group's forecast from the saves up to ``horizon`` of the budget."""
    return {t.name: forecast_task(t, config) for t in run_inputs(run, preset, cut_at(run, horizon), GROUPS, config)}


def _case(result: TaskForecast, truth: float) -> dict[str, Any]:
    """One (run, group, horizon): each method's final value, 80% interval, status and error."""
    methods = {"evalcast": result.forecast, **result.baselines}
    row: dict[str, Any] = {"truth": truth, "proxy": result.proxy.name if result.proxy else None}
    for name in METHODS:
        f = methods.get(name)
        ok = f is not None and f.ok and f.final is not None
        row[name] = {"status": "ok" if ok else "refused", "reason": "" if ok or f is None else f.reason,
                     "final": f.final if ok else None,
                     "interval80": list(f.interval80) if ok and f.interval80 else None,
                     "error": abs(f.final - truth) if ok else None}
    return row


def summarise(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: published count, refusal rate, MAE and worst error over published forecasts, 80% coverage;
    and each baseline's MAE on the cases where evalcast published (the paired comparison)."""
    out: dict[str, Any] = {"cases": len(cases)}
    published_by_evalcast = [c for c in cases if c["evalcast"]["status"] == "ok"]
    for name in METHODS:
        done = [c[name] for c in cases if c[name]["status"] == "ok"]
        errors = [d["error"] for d in done]
        covered = [d["interval80"][0] <= c["truth"] <= d["interval80"][1]
                   for c in cases for d in [c[name]] if d["status"] == "ok" and d["interval80"]]
        reasons: dict[str, int] = {}
        for c in cases:
            if c[name]["status"] != "ok":
                reasons[c[name]["reason"]] = reasons.get(c[name]["reason"], 0) + 1
        paired = [c[name]["error"] for c in published_by_evalcast if c[name]["status"] == "ok"]
        out[name] = {"published": len(done), "refused": len(cases) - len(done),
                     "refusal_rate": (len(cases) - len(done)) / len(cases) if cases else None,
                     "mae": nanmean(errors), "worst": max(errors) if errors else None,
                     "coverage80": float(np.mean(covered)) if covered else None,
                     "mae_where_evalcast_published": nanmean(paired), "paired_n": len(paired),
                     "refusal_reasons": reasons}
    return out


def run_forecasts(path: str, preset: Preset) -> dict[str, Any]:
    """Every (group, horizon) case of one run, and the fan data of ``group all`` (runs in a worker process)."""
    run = Run.load(path)
    config = ForecastConfig(n_bootstrap=preset.n_bootstrap)
    cases, fans = [], {}
    for h in preset.horizons:
        for group, result in forecast_at(run, preset, h, config).items():
            cases.append({"run": run.name, "schedule": run.spec.schedule, "dropped": run.spec.drop is not None,
                          "group": group, "horizon": h, **_case(result, float(run.true_pass(group)[-1]))})
            curve = result.forecast.curve
            if group == "all" and result.forecast.ok and curve is not None:
                fans[str(h)] = {"x": curve.x, "mean": curve.mean, "lo80": curve.lo80, "hi80": curve.hi80,
                                "x_last": result.x_last}
    return {"cases": cases, "fans": fans}


def _by(cases: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        groups.setdefault(key(case), []).append(case)
    return {k: summarise(v) for k, v in groups.items()}


def forecast_section(per_run: list[dict[str, Any]], preset: Preset) -> dict[str, Any]:
    """Summaries by horizon and by schedule (the dropped-task run apart: its mix changes after every horizon)."""
    cases = [c for r in per_run for c in r["cases"]]
    scored = [c for c in cases if not c["dropped"]]
    return {
        "horizons": list(preset.horizons), "anchor_every": preset.anchor_every, "n_bootstrap": preset.n_bootstrap,
        "by_horizon": _by(scored, lambda c: str(c["horizon"])),
        "by_schedule": _by(scored, lambda c: f"{c['schedule']}@{c['horizon']}"),
        "dropped_task_run": _by([c for c in cases if c["dropped"]], lambda c: str(c["horizon"])),
        "cases": cases,
        "fans": {c["run"]: r["fans"] for r in per_run for c in r["cases"][:1] if c["run"] in FAN_RUNS},
        "targets": {"mae@0.25": 0.05, "mae@0.1": 0.10, "vs_loss_twostep": 0.5, "coverage80": [0.7, 0.9]},
    }


def forecast_headline(work: Path, preset: Preset, **settings: Any) -> dict[str, Any]:
    """Issue 12's figures: held-out runs forecast with references (``loo``, ``smaller``) and without (``none``),
    by horizon (``settings``: ``modes``, ``max_references``); see :mod:`benchmarks.ladder.refforecasts`."""
    return refforecasts.forecast_headline(work, preset, **settings)
