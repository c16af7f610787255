"""Issue 3: do the proxies track true pass@1 within a run, across runs at matched compute, and when a task
is dropped from the mix (where the loss keeps improving)?

Correlations are *oriented*: ρ(±metric, true pass@1) with the sign that makes "metric better" positive
(NLL, log-rank, BPB, entropy and the losses are negated), so a working proxy scores near +1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.ladder.config import TASKS
from benchmarks.ladder.measures import interp_log, nanmean, orientation, spearman
from benchmarks.ladder.runs import Run

PROXIES = ("nll", "top1", "log_rank", "prob", "entropy", "greedy_match", "answer_match", "bpb", "pair_accuracy",
           "pass@1_probe", "nll.rarity", "top1.rarity", "nll.answer", "top1.answer", "prob.traj")
LOSSES = ("val_loss", "val_loss_mix", "train_loss")
GROUPS = ("all", *TASKS)


def oriented(run: Run, group: str, metric: str, mask: np.ndarray | None = None) -> float:
    """Oriented Spearman across the run's saves (those in ``mask``) of a metric with the group's true pass@1."""
    values, truth = orientation(metric) * run.metric(group, metric), run.true_pass(group)
    if mask is not None:
        values, truth = values[mask], truth[mask]
    return spearman(values, truth)


def within_run(runs: list[Run]) -> dict[str, Any]:
    """(a) Per run and group, each proxy's and each loss's oriented Spearman with true pass@1 across saves;
    and the mean over runs (the dropped-task run left out: its own section)."""
    per_run = {r.name: {g: {m: oriented(r, g, m) for m in (*PROXIES, *LOSSES)} for g in GROUPS} for r in runs}
    healthy = [r.name for r in runs if r.spec.group != "drop"]
    mean = {g: {m: nanmean(per_run[n][g][m] for n in healthy) for m in (*PROXIES, *LOSSES)} for g in GROUPS}
    return {"runs": per_run, "mean": mean, "runs_in_mean": healthy}


def compute_grid(runs: list[Run], points: int) -> np.ndarray:
    """Log-spaced compute values inside every run's range (each run's first to last save)."""
    lo = max(float(r.compute[0]) for r in runs)
    hi = min(float(r.compute[-1]) for r in runs)
    if not hi > lo:
        return np.array([hi])
    return np.geomspace(lo, hi, points)


def matched_compute(runs: list[Run], points: int) -> dict[str, Any]:
    """(b) Model/data selection: at common compute values C = 6·N·D (interpolated in log C between saves),
    the oriented Spearman across runs of each proxy and loss with true pass@1, per group; mean over C."""
    ladder = [r for r in runs if r.spec.group == "ladder"]
    if len(ladder) < 3:
        return {"runs": [r.name for r in ladder], "note": "fewer than 3 ladder runs"}
    grid = compute_grid(ladder, points)
    table: dict[str, dict[str, list[float]]] = {}
    truth: dict[str, list[list[float]]] = {}
    for g in GROUPS:
        truth[g] = [[interp_log(c, r.compute, r.true_pass(g)) for r in ladder] for c in grid]
        table[g] = {}
        for m in (*PROXIES, *LOSSES):
            table[g][m] = [spearman([orientation(m) * interp_log(c, r.compute, r.metric(g, m)) for r in ladder],
                                    truth[g][i]) for i, c in enumerate(grid)]
    final = {g: {m: spearman([orientation(m) * r.metric(g, m)[-1] for r in ladder],
                             [r.true_pass(g)[-1] for r in ladder]) for m in (*PROXIES, *LOSSES)} for g in GROUPS}
    return {"runs": [r.name for r in ladder], "compute": grid.tolist(),
            "n_nonembedding": {r.name: r.meta["n_nonembedding"] for r in ladder},
            "true_pass": truth, "spearman": table,
            "mean": {g: {m: nanmean(v) for m, v in table[g].items()} for g in GROUPS},
            "final_checkpoints": final}


def dropped_task(runs: list[Run]) -> dict[str, Any]:
    """(c) After the drop: the dropped task's proxies vs its true pass@1, and the overall losses vs it."""
    out: dict[str, Any] = {}
    for run in (r for r in runs if r.spec.drop is not None):
        task, fraction = run.spec.drop
        after = run.steps >= fraction * run.spec.steps
        at = int(np.argmax(after))
        truth = run.true_pass(task)
        out[run.name] = {
            "task": task, "drop_step": int(fraction * run.spec.steps), "saves_after": int(after.sum()),
            "true_pass_at_drop": float(truth[at]), "true_pass_end": float(truth[-1]),
            "true_pass_max_after": float(truth[after].max()),
            "val_loss_at_drop": float(run.metric("all", "val_loss")[at]),
            "val_loss_end": float(run.metric("all", "val_loss")[-1]),
            "train_loss_at_drop": float(run.metric("all", "train_loss")[at]),
            "train_loss_end": float(run.metric("all", "train_loss")[-1]),
            "spearman_task_proxies": {m: oriented(run, task, m, after) for m in PROXIES},
            "spearman_overall": {m: spearman(orientation(m) * run.metric("all", m)[after], truth[after])
                                 for m in ("nll", "top1", *LOSSES)},
        }
    return out
