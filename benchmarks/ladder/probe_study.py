"""Issue 4: the hidden-state probe, trained early and judged later against the ground truth; its cost.

Offline (features read from ``probe_features/``, saved at every save), a default ``ProbeTrainer`` is given
the true greedy outcome of each probe question as labels, under two protocols: ``first_third`` (every save
of the first third of a run is an anchor; every later save is predicted) and ``rolling`` (anchors on the
run's anchor schedule; every save is predicted by the probe trained on the anchors before it). Scores
against each predicted save's true outcomes: AUROC and Brier over (question, save) pairs, and the error of
the predicted pass@1 (mean P(solve)) per save. Questions the probe never trained on (its own held-out
share) are scored separately.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.ladder.measures import nanmean
from benchmarks.ladder.runs import Run
from evalcast.probe import ProbeConfig, ProbeTrainer, features_from_arrays, heldout_mask, score
from evalcast.runs.store import FEATURES, RunStore

TRAIN_FRACTION = 1 / 3


def _scores(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    s = score(p, np.ones_like(y), y)
    return {"auroc": s.auroc, "brier": s.brier, "question_saves": s.questions}


def protocol(run: Run, anchor: np.ndarray, scored: np.ndarray) -> dict[str, Any]:
    """A default probe given true labels at the ``anchor`` saves, in step order; each ``scored`` save is
    predicted by the probe trained on the anchors before it (so a save is predicted before its own label)."""
    store = RunStore(run.path / "evalcast")
    column = {q: i for i, q in enumerate(run.ids)}
    tasks = dict(zip(run.ids, run.tasks.tolist()))
    config = ProbeConfig()
    trainer = ProbeTrainer(config)
    p_all, y_all, errors, task_errors, steps = [], [], [], [], []
    held: np.ndarray | None = None
    for k, step in enumerate(run.steps.astype(int)):
        arrays = store.load_arrays(int(step), FEATURES)
        if arrays is None:
            continue
        features = features_from_arrays(arrays)
        y = run.truth[k, [column[q] for q in features.ids]]
        if scored[k] and trainer.ready:
            p = np.asarray(trainer.predict(int(step), features, tasks).p_solve)
            held = heldout_mask(features.ids, config.heldout_fraction, config.seed)
            names = np.array([tasks[q] for q in features.ids])
            p_all.append(p)
            y_all.append(y)
            steps.append(int(step))
            errors.append(abs(p.mean() - y.mean()))
            task_errors.append(nanmean(abs(p[names == t].mean() - y[names == t].mean()) for t in dict.fromkeys(names)))
        if anchor[k]:
            trainer.add_anchor(int(step), features, {q: (1, int(c)) for q, c in zip(features.ids, y)}, tasks)
    if not p_all:
        return {"status": "no_probe", "reason": trainer.reason, "message": trainer.message}
    p, y = np.concatenate(p_all), np.concatenate(y_all)
    assert held is not None
    held_rows = np.tile(held, len(p_all))
    return {
        "status": "ok", "anchor_saves": int(anchor.sum()), "scored_saves": len(p_all), "questions": len(p_all[0]),
        "pooled": _scores(p, y), "auroc_per_save_mean": nanmean(_scores(a, b)["auroc"] for a, b in zip(p_all, y_all)),
        "never_trained_questions": {**_scores(p[held_rows], y[held_rows]), "distinct_questions": int(held.sum())},
        "pass_at_1_error_mean": float(np.mean(errors)), "pass_at_1_error_max": float(np.max(errors)),
        "task_pass_at_1_error_mean": nanmean(task_errors),
        "curve": {"step": steps, "predicted": [float(a.mean()) for a in p_all],
                  "true": [float(b.mean()) for b in y_all]},
        "_pooled_arrays": (p, y, np.array(errors)),
    }


PROTOCOLS = ("first_third", "rolling")


def run_probe(path: str, name: str, anchor_every: int) -> dict[str, Any]:
    """One protocol on one run (a worker process): ``first_third`` (trained on every save of the first third,
    scored on every later save) or ``rolling`` (true labels on the anchor schedule, each save scored by the
    probe trained on the anchors before it: what the monitor does, judged at every save)."""
    run = Run.load(path)
    if name == "first_third":
        early = run.fraction <= TRAIN_FRACTION + 1e-9
        return protocol(run, early, ~early)
    return protocol(run, np.arange(len(run.steps)) % anchor_every == 0, np.ones(len(run.steps), bool))


def online_probe(run: Run) -> dict[str, Any]:
    """The monitor's own figures: at each anchor, the probe trained on earlier anchors scored on the new
    checkpoint's held-out questions ("earlier predicts later"), group ``all``."""
    rows = []
    for r in run.records:
        forward = (r.anchor.report if r.anchor is not None else {}).get("forward", {}).get("all")
        if forward:
            rows.append({"step": r.step, "auroc": forward.get("auroc"), "brier": forward.get("brier"),
                         "pass_at_1_error": abs(forward["pass_at_1_pred"] - forward["pass_at_1"])})
    return {"anchors_scored": len(rows), "auroc_mean": nanmean(x["auroc"] for x in rows),
            "brier_mean": nanmean(x["brier"] for x in rows),
            "pass_at_1_error_mean": nanmean(x["pass_at_1_error"] for x in rows), "by_anchor": rows}


def costs(run: Run) -> dict[str, Any]:
    """Seconds per save: evalcast's proxy pass + probe (saves without an anchor), the whole evalcast step,
    and greedy generation + scoring of the ground-truth questions (medians)."""
    anchor = np.array([r.anchor is not None for r in run.records])
    proxy_probe = run.cost("forward_seconds") + np.nan_to_num(run.cost("probe_seconds"))
    generative = np.array([row["seconds"] for row in run.truth_rows])
    med = float(np.median(proxy_probe[~anchor])) if (~anchor).any() else math.nan
    return {"proxy_probe_s": med, "evalcast_step_s": float(np.nanmedian(run.cost("seconds"))),
            "anchor_s": float(np.nanmedian(run.cost("anchor_seconds"))) if anchor.any() else math.nan,
            "generative_s": float(np.median(generative)), "questions_generated": len(run.ids),
            "tokens_scored": float(np.nanmedian(run.cost("tokens_scored"))),
            "generative_over_proxy": float(np.median(generative)) / med if med > 0 else math.nan}


def _pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r.pop("_pooled_arrays") for r in results if r.get("status") == "ok"]
    if not done:
        return {"status": "no_probe"}
    p, y, err = (np.concatenate(parts) for parts in zip(*done))
    return {"status": "ok", "runs": len(done), **_scores(p, y), "pass_at_1_error_mean": float(err.mean()),
            "pass_at_1_error_max": float(err.max())}


def probe_section(runs: list[Run], per_run: dict[str, list[dict[str, Any]]],
                  pairs: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Offline probe quality (each protocol: its results in ``runs`` order) per run and pooled, the online
    figures, costs, and pair accuracy vs true pass@1."""
    out: dict[str, Any] = {"train_fraction": TRAIN_FRACTION}
    for name, results in per_run.items():
        out[name] = {"pooled": _pooled(results), "runs": {r.name: p for r, p in zip(runs, results)}}
    return {**out, "online": {r.name: online_probe(r) for r in runs}, "cost": {r.name: costs(r) for r in runs},
            "pair_accuracy_spearman": pairs, "targets": {"auroc": 0.80, "pass_at_1_error": 0.05}}
