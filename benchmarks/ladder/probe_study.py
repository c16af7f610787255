"""The hidden-state probe judged on questions it never trained on, at saves it was not trained at.

Offline (features read from ``probe_features/``, saved at every save), a ``ProbeTrainer`` with the run's own
``ProbeConfig`` is given true greedy outcomes of the run's anchor questions as labels; it never trains on its
held-out share (``heldout_fraction`` of them, fixed by question id), and only those **unseen** questions are
scored. Two protocols:

* ``rolling``: labels at the run's own anchor saves (what the monitor does); every *other* save after the
  first anchor is scored by the probe trained on the anchors before it;
* ``first_third``: labels at every save of the first third; every later save is scored.

Per scored save: AUROC, Brier and the pass@1 error (|mean P(solve) − true pass@1| over the unseen questions);
averaged over saves per run (AUROC over the saves where both outcomes occur), then over runs. Beside it, a
baseline with no hidden states: each unseen question predicted by the pass rate, at the last anchor, of the
labelled questions of its task and level.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ladder.measures import clean, nanmean
from benchmarks.ladder.runs import Run
from evalcast.probe import ProbeConfig, ProbeTrainer, features_from_arrays, heldout_mask, score
from evalcast.runs.store import FEATURES, RunStore

TRAIN_FRACTION = 1 / 3
PROTOCOLS = ("rolling", "first_third")
FIGURES = ("auroc", "brier", "pass_at_1_error")


def schedule(anchor_saves: np.ndarray, fraction: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(labelled, scored)`` save masks of a protocol: never both at one save, and every scored save comes
    after a labelled one."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown probe protocol {name!r}; expected one of {PROTOCOLS}")
    labelled = anchor_saves.copy() if name == "rolling" else fraction <= TRAIN_FRACTION + 1e-9
    index = np.arange(len(labelled))
    first = int(np.argmax(labelled)) if labelled.any() else len(labelled)
    return labelled, ~labelled & (index > first)


def save_scores(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """One save's figures over the scored questions (0/1 outcomes ``y``)."""
    s = score(p, np.ones_like(y), y)
    return {"auroc": s.auroc, "brier": s.brier, "pass_at_1_error": abs(float(p.mean()) - float(y.mean()))}


def group_rate(y_last: np.ndarray, labelled: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Baseline P(solve): the pass rate of the labelled questions of the same stratum at the last labelled save
    (the labelled questions' overall rate where a stratum has none)."""
    overall = float(y_last[labelled].mean())
    out = np.full(len(y_last), overall)
    for s in np.unique(strata):
        rows = labelled & (strata == s)
        if rows.any():
            out[strata == s] = y_last[rows].mean()
    return out


def protocol(run: Run, name: str) -> dict[str, Any]:
    """One protocol on one run: per-save figures of the probe and of the baseline on the unseen questions."""
    config = ProbeConfig.from_dict(run.meta["probe"])
    store = RunStore(run.path / "evalcast")
    column = {q: i for i, q in enumerate(run.ids)}
    tasks = dict(zip(run.ids, run.tasks.tolist()))
    levels = {q["id"]: f"{q['task']}/{q['level']}" for q in run.meta["questions"]}
    probe_ids = next(sorted(r.anchor.per_question) for r in run.records if r.anchor is not None)
    unseen = {q for q, h in zip(probe_ids, heldout_mask(probe_ids, config.heldout_fraction, config.seed)) if h}
    trainable = set(probe_ids) - unseen
    labelled_mask, scored_mask = schedule(run.anchor, run.fraction, name)
    trainer = ProbeTrainer(config)
    rows: dict[str, list[float]] = {k: [] for k in ("step", "predicted", "true", *FIGURES,
                                                     *(f"baseline_{f}" for f in FIGURES))}
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    last_labels: np.ndarray | None = None
    for k, step in enumerate(run.steps.astype(int)):
        if not (labelled_mask[k] or scored_mask[k]):
            continue
        arrays = store.load_arrays(int(step), FEATURES)
        if arrays is None:
            continue
        features = features_from_arrays(arrays)
        y = run.truth[k, [column[q] for q in features.ids]]
        held = np.array([q in unseen for q in features.ids])
        if scored_mask[k] and trainer.ready and last_labels is not None:
            p = np.asarray(trainer.predict(int(step), features, tasks).p_solve)[held]
            strata = np.array([levels[q] for q in features.ids])
            trained = np.array([q in trainable for q in features.ids])
            base = group_rate(last_labels, trained, strata)[held]
            rows["step"].append(int(step))
            rows["predicted"].append(float(p.mean()))
            rows["true"].append(float(y[held].mean()))
            for key, v in save_scores(p, y[held]).items():
                rows[key].append(v)
            for key, v in save_scores(base, y[held]).items():
                rows[f"baseline_{key}"].append(v)
            pairs.append((p, y[held]))
        if labelled_mask[k]:
            labels = {q: (1, int(c)) for q, c in zip(features.ids, y) if q in trainable}  # never an unseen one
            trainer.add_anchor(int(step), features, labels, tasks)
            last_labels = y
    if not pairs:
        return {"status": "no_probe", "reason": trainer.reason, "message": trainer.message}
    p_all, y_all = (np.concatenate(x) for x in zip(*pairs))
    return {"status": "ok", "labelled_saves": int(labelled_mask.sum()), "scored_saves": len(pairs),
            "unseen_questions": len(unseen), "probe_questions": len(probe_ids),
            "auroc_saves": int(np.isfinite(rows["auroc"]).sum()),
            "mean": {f: nanmean(rows[f]) for f in FIGURES},
            "baseline_mean": {f: nanmean(rows[f"baseline_{f}"]) for f in FIGURES},
            "pooled_pairs": save_scores(p_all, y_all), "per_save": rows}


def _stamp(path: Path) -> str:
    """Changes when the run directory's records or this module's code do."""
    files = [path / "run.json", path / "truth.jsonl", path / "evalcast" / "history.jsonl"]
    text = "|".join(f"{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f.exists())
    return hashlib.blake2b((text + Path(__file__).read_text()).encode(), digest_size=12).hexdigest()


def run_probe(path: str, name: str) -> dict[str, Any]:
    """One protocol on one run (a worker process); kept in ``<run>/probe_<name>.json`` and reused while neither
    the run directory nor this module changes."""
    cache = Path(path) / f"probe_{name}.json"
    stamp = _stamp(Path(path))
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("stamp") == stamp:
            return stored["result"]
    result = clean(protocol(Run.load(path), name))
    cache.write_text(json.dumps({"stamp": stamp, "result": result}))
    return result


def _over_runs(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    done = {n: r for n, r in results.items() if r.get("status") == "ok"}
    return {"runs": sorted(done), "runs_without_probe": sorted(set(results) - set(done)),
            "mean": {f: nanmean(r["mean"][f] for r in done.values()) for f in FIGURES},
            "baseline_mean": {f: nanmean(r["baseline_mean"][f] for r in done.values()) for f in FIGURES},
            "unseen_questions_min": min((r["unseen_questions"] for r in done.values()), default=None),
            "scored_saves": sum(r["scored_saves"] for r in done.values())}


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
            "pass_at_1_error_mean": nanmean(x["pass_at_1_error"] for x in rows)}


def costs(run: Run) -> dict[str, Any]:
    """Seconds per save: evalcast's proxy pass + probe (saves without an anchor), the whole evalcast step,
    and greedy generation + scoring of the ground-truth questions (medians)."""
    proxy_probe = run.cost("forward_seconds") + np.nan_to_num(run.cost("probe_seconds"))
    generative = np.array([row["seconds"] for row in run.truth_rows])
    med = float(np.median(proxy_probe[~run.anchor])) if (~run.anchor).any() else math.nan
    return {"proxy_probe_s": med, "evalcast_step_s": float(np.nanmedian(run.cost("seconds"))),
            "generative_s": float(np.median(generative)), "questions_generated": len(run.ids),
            "generative_over_proxy": float(np.median(generative)) / med if med > 0 else math.nan}


def probe_section(runs: list[Run], per_run: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per protocol: per-run results and the means over held-out and over tuning runs; the online figures
    (scored at anchor saves on the monitor's held-out questions) and costs, per run."""
    out: dict[str, Any] = {"train_fraction": TRAIN_FRACTION, "targets": {"auroc": 0.80, "pass_at_1_error": 0.05}}
    for name, results in per_run.items():
        by_name = {r.name: p for r, p in zip(runs, results)}
        out[name] = {"runs": by_name,
                     "heldout": _over_runs({r.name: by_name[r.name] for r in runs if r.heldout}),
                     "tuning": _over_runs({r.name: by_name[r.name] for r in runs if not r.heldout})}
    return {**out, "online": {r.name: online_probe(r) for r in runs}, "cost": {r.name: costs(r) for r in runs}}
