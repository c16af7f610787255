"""A task leaves the mix: how soon does each proxy, and each loss, show it?

On each dropped-task run, after the drop: the oriented Spearman of the dropped task's proxies and of the
overall metrics and losses with the task's true pass@1, and the **detection delay** in saves (the first save
after the drop counts 1) until the series leaves its pre-drop band: falls below every one of its last
``WINDOW`` values before the drop (:func:`leaves_band`). The same rule on the run's control (the same size,
mix and schedule without the drop) at the same save tells a detection from a false alarm. The proxy named
best is the fastest one without a false alarm on the *tuning* drop run; it is then scored on the held-out one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.ladder.measures import leaves_band, orientation, spearman
from benchmarks.ladder.proxies import LOSSES, PROXIES
from benchmarks.ladder.runs import Run

WINDOW = 3
"""Saves before the drop that set the band (fixed beforehand, not tuned: a tenth of a 30-save run)."""
OVERALL = ("nll", "top1", *LOSSES)
"""Metrics read on group ``all`` (the losses exist only there)."""


def _control(run: Run, runs: list[Run]) -> Run | None:
    return next((o for o in runs if o.spec.drop is None and o.spec.size == run.spec.size and o.spec.mix == run.spec.mix
                 and o.spec.schedule == run.spec.schedule and o.spec.seed == run.spec.seed), None)


def delay(run: Run, group: str, metric: str, start: int, signs: dict[str, float]) -> int | None:
    """Saves from the change at save index ``start`` until ``metric`` (oriented) leaves its pre-change band."""
    values = run.true_pass(group) if metric == "true_pass" else orientation(metric, signs) * run.metric(group, metric)
    k = leaves_band(values, start, WINDOW)
    return None if k is None else k - start + 1


def study(run: Run, runs: list[Run], signs: dict[str, float], alert_delay: int | None) -> dict[str, Any]:
    """One dropped-task run: delays (and its control's false alarms), Spearman after the drop."""
    assert run.spec.drop is not None
    task, fraction = run.spec.drop
    after = run.steps > fraction * run.spec.steps
    start = int(np.argmax(after))
    control = _control(run, runs)
    metrics = [(task, m) for m in PROXIES] + [("all", m) for m in OVERALL]
    rows = {}
    for group, m in metrics:
        rows[f"{group}/{m}"] = {
            "delay_saves": delay(run, group, m, start, signs),
            "control_delay_saves": delay(control, group, m, start, signs) if control is not None else None,
            "spearman_after": spearman(orientation(m, signs) * run.metric(group, m)[after],
                                       run.true_pass(task)[after])}
    truth = run.true_pass(task)
    return {"task": task, "drop_step": int(fraction * run.spec.steps), "first_save_after": int(run.steps[start]),
            "saves_after": int(after.sum()), "window": WINDOW, "control": control.name if control else None,
            "true_pass_before": float(truth[start - 1]), "true_pass_end": float(truth[-1]),
            "true_pass_delay_saves": delay(run, task, "true_pass", start, signs),
            "alert_delay_saves": alert_delay, "metrics": rows}


def choose(result: dict[str, Any]) -> str | None:
    """The task proxy with the shortest delay whose control stays in its band (higher ρ after the drop breaks
    ties, then ``PROXIES`` order)."""
    task = result["task"]
    ranked = []
    for i, m in enumerate(PROXIES):
        row = result["metrics"][f"{task}/{m}"]
        if row["delay_saves"] is not None and row["control_delay_saves"] is None:
            rho = row["spearman_after"]
            ranked.append((row["delay_saves"], -(rho if rho is not None and math.isfinite(rho) else -2.0), i, m))
    return min(ranked)[3] if ranked else None


def dropped_task(runs: list[Run], signs: dict[str, float], alerts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every dropped-task run, the proxy chosen on the tuning one(s), and that proxy's delay on each run."""
    out = {r.name: study(r, runs, signs, alerts.get(r.name, {}).get("delay_saves")) for r in runs
           if r.spec.drop is not None}
    tuning = [r.name for r in runs if r.spec.drop is not None and not r.heldout]
    choices = [c for c in (choose(out[n]) for n in tuning) if c is not None]
    chosen = max(set(choices), key=choices.count) if choices else None
    return {"runs": out, "heldout_runs": [r.name for r in runs if r.spec.drop is not None and r.heldout],
            "tuning_runs": tuning, "best_proxy": chosen,
            "best_proxy_chosen_on": "tuning drop run(s): shortest delay without a false alarm on the control"}
