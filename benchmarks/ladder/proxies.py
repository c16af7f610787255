"""Do the proxies track true pass@1 within a run, and rank runs at matched compute?

Correlations are *oriented*: ρ(±metric, true pass@1) with the sign that makes "metric better" positive
(NLL, log-rank, BPB and the losses are negated; entropy's sign is chosen on the tuning runs), so a working
proxy scores near +1. Every figure is given for held-out and tuning runs apart; choices (entropy's sign, the
proxy named best) are made on the tuning runs and only scored on the held-out ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.ladder.config import TASKS
from benchmarks.ladder.measures import OPEN, interp_log, nanmean, orientation, rank_score, spearman
from benchmarks.ladder.runs import Run

PROXIES = (
    "nll",
    "top1",
    "log_rank",
    "prob",
    "entropy",
    "greedy_match",
    "answer_match",
    "bpb",
    "pair_accuracy",
    "pass@1_probe",
    "nll.rarity",
    "top1.rarity",
    "nll.answer",
    "top1.answer",
    "prob.traj",
)
LOSSES = ("val_loss", "val_loss_mix", "train_loss")
"""``val_loss``: the common held-out text, the fair loss baseline; ``val_loss_mix`` (each run's own mix, filler
included) and ``train_loss`` are kept for comparison only."""
GROUPS = ("all", *TASKS)
HEALTHY = ("ladder", "seed", "schedule")
"""Run groups ranked against each other and used for false-alarm counts (no drop, no forced plateau)."""


def healthy(runs: list[Run], heldout: bool) -> list[Run]:
    return [r for r in runs if r.spec.group in HEALTHY and r.heldout == heldout]


def choose_signs(tuning: list[Run]) -> dict[str, float]:
    """Direction of each metric the library leaves open: the sign of its mean raw within-run Spearman with true
    pass@1 over the tuning runs (groups ``all`` and every task); +1 when that mean is not finite."""
    signs = {}
    for base in OPEN:
        mean = nanmean(spearman(r.metric(g, base), r.true_pass(g)) for r in tuning for g in GROUPS)
        signs[base] = -1.0 if math.isfinite(mean) and mean < 0 else 1.0
    return signs


def oriented(run: Run, group: str, metric: str, signs: dict[str, float], mask: np.ndarray | None = None) -> float:
    """Oriented Spearman across the run's saves (those in ``mask``) of a metric with the group's true pass@1."""
    values, truth = orientation(metric, signs) * run.metric(group, metric), run.true_pass(group)
    if mask is not None:
        values, truth = values[mask], truth[mask]
    return spearman(values, truth)


def within_run(runs: list[Run], signs: dict[str, float]) -> dict[str, Any]:
    """Per run and group, each proxy's and loss's oriented Spearman with true pass@1 across saves; means over
    the held-out and over the tuning healthy runs (everything trends together here: it proves little)."""
    metrics = (*PROXIES, *LOSSES)
    per_run = {r.name: {g: {m: oriented(r, g, m, signs) for m in metrics} for g in GROUPS} for r in runs}

    def mean(names: list[str]) -> dict[str, dict[str, float]]:
        return {g: {m: nanmean(per_run[n][g][m] for n in names) for m in metrics} for g in GROUPS}

    held, tune = ([r.name for r in healthy(runs, h)] for h in (True, False))
    return {
        "runs": per_run,
        "mean_heldout": mean(held),
        "mean_tuning": mean(tune),
        "heldout_runs": held,
        "tuning_runs": tune,
    }


def compute_grid(runs: list[Run], points: int) -> np.ndarray:
    """Log-spaced compute values inside every run's range (each run's first to last save)."""
    lo = max(float(r.compute[0]) for r in runs)
    hi = min(float(r.compute[-1]) for r in runs)
    if not hi > lo:
        return np.array([hi])
    return np.geomspace(lo, hi, points)


def ranking(runs: list[Run], points: int, signs: dict[str, float]) -> dict[str, Any]:
    """At common compute values C = 6·N·D (interpolated in log C between saves), the oriented Spearman across
    ``runs`` of every proxy and loss with true pass@1, per group.

    A point where the runs' true pass@1 cannot be ranked (all equal, e.g. all 0) is left out for every metric;
    at the others a metric that cannot rank the runs scores ρ = 0 (:func:`rank_score`). So every metric's mean
    is over the same ``points_used``.
    """
    if len(runs) < 3:
        return {"runs": [r.name for r in runs], "note": f"{len(runs)} runs: too few to rank"}
    grid = compute_grid(runs, points)
    metrics = (*PROXIES, *LOSSES)
    truth, rho, mean, used = {}, {}, {}, {}
    for g in GROUPS:
        truth[g] = [[interp_log(c, r.compute, r.true_pass(g)) for r in runs] for c in grid]
        rho[g] = {
            m: [
                rank_score(
                    [orientation(m, signs) * interp_log(c, r.compute, r.metric(g, m)) for r in runs], truth[g][i]
                )
                for i, c in enumerate(grid)
            ]
            for m in metrics
        }
        keep = [i for i in range(len(grid)) if not math.isnan(rank_score(truth[g][i], truth[g][i]))]
        used[g] = keep
        mean[g] = {m: float(np.mean([rho[g][m][i] for i in keep])) if keep else math.nan for m in metrics}
    final = {
        g: {
            m: rank_score(
                [orientation(m, signs) * r.metric(g, m)[-1] for r in runs], [r.true_pass(g)[-1] for r in runs]
            )
            for m in metrics
        }
        for g in GROUPS
    }
    return {
        "runs": [r.name for r in runs],
        "compute": grid.tolist(),
        "true_pass": truth,
        "spearman": rho,
        "points_used": {g: len(v) for g, v in used.items()},
        "point_indices_used": used,
        "mean": mean,
        "final_checkpoints": final,
    }


def best(means: dict[str, float], candidates: tuple[str, ...] = PROXIES) -> str | None:
    """The candidate with the highest finite mean (first in ``candidates`` order on a tie)."""
    finite = [
        (means.get(m, math.nan), -i, m) for i, m in enumerate(candidates) if math.isfinite(means.get(m, math.nan))
    ]
    return max(finite)[2] if finite else None


def matched_compute(runs: list[Run], points: int, signs: dict[str, float]) -> dict[str, Any]:
    """Model selection: rankings of the healthy held-out runs and, apart, of the healthy tuning runs; the proxy
    named best is the one ranking the *tuning* runs best (group ``all``), then scored on the held-out runs."""
    tuning, heldout = ranking(healthy(runs, False), points, signs), ranking(healthy(runs, True), points, signs)
    chosen = best(tuning.get("mean", {}).get("all", {}))
    return {
        "heldout": heldout,
        "tuning": tuning,
        "best_proxy": chosen,
        "best_proxy_chosen_on": "tuning runs (highest mean ρ, group all)",
    }
