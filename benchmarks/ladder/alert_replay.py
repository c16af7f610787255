"""Issue 12 item 7: the forecast-driven alerts replayed on held-out ladder runs, against the ground truth.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/alert_replay.py --work DIR [--max-references 4]
    .venv/bin/python benchmarks/ladder/alert_replay.py --work DIR --summarise-only   # the summary of a saved run

Each held-out run (the dropped-task run aside) is forecast at every save from 10% of its budget on, per
group (``all`` and each task), with leave-one-run-out references (the other runs, at most
``--max-references``, nearest in size first: as ``refforecasts.py``), exactly as the monitor would have
forecast live. The forecasts go into the run's records (``forecast_metrics``, as the monitor writes them)
and the shipped rules are run save by save over that history, their alerts appended as the monitor does:

* ``ForecastPlateau(group, **defaults)`` (min gain 0.01, patience 3, current = probe where it predicts,
  else the latest anchor): scored by what stopping at its first alert would have cost — the true
  pass@1 still to come (``truth_final − truth at the save``) — and the budget it would have saved;
* ``TargetReached(group, target=T, metric="forecast_lo80")`` against the same rule on
  ``pass@1_anchor`` (waiting for the real evaluation to reach T): T is the median final true pass@1 of the
  target's references (never the target's own). Scored: correct when the target run's final true pass@1
  is ≥ T (the anchor rule too: a true anchor above T can still end below it), and how much of the budget
  earlier than the anchor rule it fired (negative: later).

Rule settings are the shipped defaults; nothing was tuned on these runs. Writes
``benchmarks/results/ladder_alert_replay.json`` and a figure beside it (``.png``: the forecast at every
save of each run, group ``all``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from matplotlib.figure import Figure

from benchmarks.ladder.config import PRESETS, RESULTS, Preset
from benchmarks.ladder.measures import clean, nanmean
from benchmarks.ladder.plots import _save
from benchmarks.ladder.refcases import anchor_records, cut_at, run_inputs
from benchmarks.ladder.refforecasts import GROUPS, references_of
from benchmarks.ladder.runs import Run, load_runs
from evalcast.alerts import ForecastPlateau, TargetReached
from evalcast.forecast import ForecastConfig, ReferenceRun, forecast_task, prepare_references
from evalcast.monitor.forecast_step import forecast_metrics
from evalcast.runs import Record

START = 0.1


def _replay(records: list[Record], rule: Any) -> int | None:
    """Index of the first save at which ``rule`` fires when run save by save over a copy of ``records``
    (alerts kept in the copy, as the monitor keeps them in the history), or None."""
    records = [dataclasses.replace(r, alerts=[]) for r in records]
    first = None
    for k in range(1, len(records) + 1):
        alert = rule.check(records[:k])
        if alert is not None:
            records[k - 1].alerts.append(alert)
            first = k - 1 if first is None else first
    return first


def replay_target(path: str, others: list[str], preset: Preset, max_references: int | None,
                  config: ForecastConfig) -> dict[str, Any]:
    """Forecasts at every save from ``START`` on, and the rules' first alerts, for one held-out run."""
    target, refs = Run.load(path), {r.name: r for r in map(Run.load, others)}
    chosen = [refs[s.name] for s in references_of(target.spec, [r.spec for r in refs.values()], "loo", max_references)]
    full = {r.name: {t.name: t for t in run_inputs(r, preset, len(r.records), GROUPS, config, last_anchor=True)}
            for r in chosen}
    refsets = {g: prepare_references([ReferenceRun(r.name, full[r.name][g], float(r.spec.size.n_nonembedding))
                                      for r in chosen], config) for g in GROUPS}
    n_target = float(target.spec.size.n_nonembedding)
    records = [dataclasses.replace(r, metrics={k: v for k, v in r.metrics.items() if "/forecast_" not in k})
               for r in anchor_records(target, len(target.records), preset.anchor_every)]
    first_cut = max(cut_at(target, START), 1)
    published: dict[str, int] = dict.fromkeys(GROUPS, 0)
    forecasts: dict[str, list[list[float]]] = {g: [] for g in GROUPS}
    for cut in range(first_cut, len(records) + 1):
        inputs = {t.name: t for t in run_inputs(target, preset, cut, GROUPS, config)}
        for g in GROUPS:
            result = forecast_task(inputs[g], config, refsets[g], n_target)
            records[cut - 1].metrics.update(forecast_metrics(g, result))
            published[g] += result.status == "ok"
            f = result.forecast
            if result.status == "ok" and f.final is not None and f.interval80:
                forecasts[g].append([float(target.fraction[cut - 1]), f.final, *f.interval80])
    fraction = target.fraction
    out: dict[str, Any] = {"run": target.name, "references": [r.name for r in chosen], "saves": len(records),
                           "forecast_saves": len(records) - first_cut + 1, "groups": {}}
    for g in GROUPS:
        truth = target.true_pass(g)
        plateau = _replay(records, ForecastPlateau(group=g))
        goal = statistics.median(float(r.true_pass(g)[-1]) for r in chosen)
        early = _replay(records, TargetReached(group=g, target=goal, metric="forecast_lo80"))
        anchor = _replay(records, TargetReached(group=g, target=goal))
        out["groups"][g] = {
            "truth_final": float(truth[-1]),
            "published": published[g],
            "plateau_fired_at": None if plateau is None else float(fraction[plateau]),
            "plateau_gain_missed": None if plateau is None else float(truth[-1] - truth[plateau]),
            "target": goal,
            "target_reached_truly": bool(truth[-1] >= goal),
            "target_forecast_at": None if early is None else float(fraction[early]),
            "target_anchor_at": None if anchor is None else float(fraction[anchor]),
            "forecasts": forecasts[g],
        }
    return out


BINS = ((0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01))


def accuracy_by_fraction(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """MAE and 80% coverage of the published forecasts against the final truth, by budget fraction."""
    out = {}
    for lo, hi in BINS:
        rows = [(f, c["truth_final"]) for c in cases for f in c["forecasts"] if lo <= f[0] < hi]
        out[f"{round(100 * lo)}-{min(100, round(100 * hi))}"] = {
            "forecasts": len(rows),
            "mae": nanmean(abs(f[1] - t) for f, t in rows),
            "coverage80": sum(f[2] <= t <= f[3] for f, t in rows) / len(rows) if rows else None,
        }
    return out


def summarise(targets: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and means over every (run, group) case."""
    cases = [c for t in targets for c in t["groups"].values()]
    fired = [c for c in cases if c["plateau_fired_at"] is not None]
    forecast_hits = [c for c in cases if c["target_forecast_at"] is not None]
    both = [c for c in forecast_hits if c["target_anchor_at"] is not None]
    return {
        "cases": len(cases),
        "forecasts_published_share": sum(c["published"] for c in cases) / max(1, sum(
            t["forecast_saves"] for t in targets for _ in t["groups"])),
        "plateau_fired": len(fired),
        "plateau_fired_at_mean": nanmean(c["plateau_fired_at"] for c in fired),
        "plateau_gain_missed_mean": nanmean(c["plateau_gain_missed"] for c in fired),
        "plateau_gain_missed_max": max((c["plateau_gain_missed"] for c in fired), default=None),
        "plateau_gain_missed_each": sorted(round(c["plateau_gain_missed"], 4) for c in fired),
        "plateau_budget_saved_mean": nanmean(1.0 - c["plateau_fired_at"] for c in fired),
        "target_truly_reached": sum(c["target_reached_truly"] for c in cases),
        "target_forecast_fired": len(forecast_hits),
        "target_forecast_correct": sum(c["target_reached_truly"] for c in forecast_hits),
        "target_forecast_false": sum(not c["target_reached_truly"] for c in forecast_hits),
        "target_anchor_fired": sum(c["target_anchor_at"] is not None for c in cases),
        "target_anchor_false": sum(c["target_anchor_at"] is not None and not c["target_reached_truly"] for c in cases),
        "target_lead_fraction_mean": nanmean(c["target_anchor_at"] - c["target_forecast_at"] for c in both),
        "target_lead_cases": len(both),
        "by_fraction": accuracy_by_fraction(cases),
    }


def replay_figure(runs: list[dict[str, Any]], path: Path, group: str = "all") -> Path:
    """One panel per held-out run: the published forecast of final pass@1 at each save (80% band), the true
    final value, and where ForecastPlateau fired."""
    cols = 3
    fig = Figure(figsize=(11, 3 * -(-len(runs) // cols)))
    axes = fig.subplots(-(-len(runs) // cols), cols, squeeze=False).ravel()
    for ax, run in zip(axes, runs):
        case = run["groups"][group]
        if case["forecasts"]:
            x, final, lo, hi = (list(v) for v in zip(*case["forecasts"]))
            ax.fill_between(x, lo, hi, alpha=0.3, label="80% interval")
            ax.plot(x, final, ".-", label="forecast")
        ax.axhline(case["truth_final"], color="k", ls="--", lw=1, label="true final")
        if case["plateau_fired_at"] is not None:
            ax.axvline(case["plateau_fired_at"], color="tab:red", lw=1, label="ForecastPlateau")
        ax.set(title=run["run"], xlim=(0, 1), ylim=(0, 1), xlabel="budget fraction", ylabel=f"{group} pass@1")
    for ax in axes[len(runs):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--work", type=Path, required=True, help="the ladder run directories")
    parser.add_argument("--max-references", type=int, default=4)
    parser.add_argument("--n-bootstrap", type=int, help="default: the preset's")
    parser.add_argument("--targets", nargs="*", help="only these held-out runs (for a quick look)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ladder_alert_replay.json")
    parser.add_argument("--summarise-only", action="store_true", help="recompute the summary of --out's runs")
    args = parser.parse_args()
    if args.summarise_only:
        saved = json.loads(args.out.read_text())
        saved["summary"] = clean(summarise(saved["runs"]))
        args.out.write_text(json.dumps(saved, indent=1))
        print(json.dumps(saved["summary"], indent=1))
        print(f"figure {replay_figure(saved['runs'], args.out.with_suffix('.png'))}")
        return
    preset = PRESETS[args.preset]()
    config = ForecastConfig(n_bootstrap=args.n_bootstrap or preset.n_bootstrap)
    runs = load_runs(args.work)
    targets = [r for r in runs if r.heldout and r.spec.drop is None and (not args.targets or r.name in args.targets)]
    started = time.perf_counter()
    with ProcessPoolExecutor(preset.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(replay_target, str(t.path), [str(r.path) for r in runs if r.name != t.name], preset,
                            args.max_references, config) for t in targets]
        results = []
        for job in jobs:
            results.append(job.result())
            print(f"replayed {results[-1]['run']} ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = summarise(results)
    notes = [f"targets: {len(results)} held-out runs (dropped-task run aside), groups {', '.join(GROUPS)}; "
             f"loo references, at most {args.max_references} per target; forecasts at every save from "
             f"{round(100 * START)}% of the budget; ForecastConfig defaults but n_bootstrap={config.n_bootstrap}",
             "rules at their shipped defaults; the TargetReached goal is the references' median final pass@1",
             f"wall time {time.perf_counter() - started:.0f} s on {preset.workers} workers"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(clean({"summary": summary, "notes": notes, "runs": results}), indent=1))
    for key, value in summary.items():
        print(f"{key:>32}: {value}")
    print(f"written {args.out} and {replay_figure(results, args.out.with_suffix('.png'))}")


if __name__ == "__main__":
    main()
