"""Forecasts with and without reference runs on simulated families, against the baselines.

    OMP_NUM_THREADS=1 nice python benchmarks/forecast_sim.py [--families 4] [--quick]

Each family (:mod:`evalcast.forecast.simfamily`, one seed each) is a five-run ladder (20M–320M, cosine,
WSD and constant schedules, budgets and peak LRs by size) sharing the task's link and the proxy's decay
shape, with per-question spread (the link is a mixture, not exactly the fitted sigmoid). Every run is
forecast from 10%, 25% and 50% of its budget

* ``loo``: references = the other runs of its family (leave one run out);
* ``smaller``: references = the runs of its family smaller than it (targets with at least two);
* ``none``: no references (evalcast's within-run forecast).

``evalcast_raw`` is the same forecast without the conformal correction.

and scored against its measured final pass@1 (the anchor at the last checkpoint). Per mode, fraction and
method: cases, publication rate, MAE on published cases, MAE with refusals scored at the last value, 80%
coverage of published intervals with its Clopper–Pearson 95% interval, and the largest miss outside an 80%
interval. Simulations are a sanity check only: nothing here tunes a default. Writes
``benchmarks/results/forecast_sim.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from evalcast.forecast import ClusterConfig, ForecastConfig, coverage_interval, forecast_task, prepare_references
from evalcast.forecast.simfamily import SimFamily, default_runs, simulate_family

RESULTS = Path(__file__).resolve().parent / "results"
FRACTIONS = (0.1, 0.25, 0.5)
METHODS = ("evalcast", "evalcast_raw", "last_value", "loss_twostep", "prior_only", "pilot_ratio")


def score(cases: list[dict]) -> dict:
    """Summary of one (mode, fraction, method) cell."""
    n = len(cases)
    pub = [c for c in cases if c["final"] is not None]
    err = [abs(c["final"] - c["truth"]) for c in pub]
    fallback = [abs((c["final"] if c["final"] is not None else c["last_value"]) - c["truth"]) for c in cases]
    hits = [c["lo80"] <= c["truth"] <= c["hi80"] for c in pub]
    misses = [max(c["lo80"] - c["truth"], c["truth"] - c["hi80"], 0.0) for c in pub]
    lo, hi = coverage_interval(int(sum(hits)), len(hits))
    return {"cases": n, "published": len(pub), "publication_rate": len(pub) / n if n else None,
            "mae_published": float(np.mean(err)) if err else None,
            "mae_refusals_at_last_value": float(np.mean(fallback)) if fallback else None,
            "coverage80": float(np.mean(hits)) if hits else None, "coverage80_ci95": [lo, hi] if hits else None,
            "max_miss_outside80": float(max(misses)) if misses else None}


def record(tf, raw, truth: float) -> dict[str, dict]:
    last = tf.baselines.get("last_value")
    last_final = last.final if last is not None and last.ok else 0.0
    out = {}
    for method in METHODS:
        fc = {"evalcast": tf.forecast, "evalcast_raw": raw.forecast if raw is not None else None}.get(
            method, tf.baselines.get(method))
        ok = fc is not None and fc.ok and fc.final is not None
        out[method] = {"truth": truth, "final": fc.final if ok else None, "last_value": last_final,
                       "lo80": fc.interval80[0] if ok else None, "hi80": fc.interval80[1] if ok else None,
                       "reason": "" if ok or fc is None else fc.reason}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--families", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="two families, 60 bootstrap replicates")
    args = parser.parse_args()
    n_fam = 2 if args.quick else args.families
    cfg = ForecastConfig(n_bootstrap=60 if args.quick else 200, clusters=ClusterConfig(enabled=False))
    raw_cfg = replace(cfg, references=replace(cfg.references, conformal=False))
    family = SimFamily(question_spread=0.5)
    cells: dict[str, dict[str, dict[str, list[dict]]]] = {}
    reasons: dict[str, dict[str, int]] = {}
    started = time.time()
    prep_seconds = []
    for seed in range(n_fam):
        runs = simulate_family(family, default_runs(seed))
        for target in runs:
            sets = {"loo": [r for r in runs if r is not target],
                    "smaller": [r for r in runs if r.spec.n_params < target.spec.n_params], "none": None}
            for mode, refs in sets.items():
                if refs is not None and len(refs) < 2:
                    continue
                refset = None
                if refs is not None:
                    t0 = time.time()
                    refset = prepare_references([r.reference() for r in refs], cfg)
                    prep_seconds.append(time.time() - t0)
                for f in FRACTIONS:
                    tf = forecast_task(target.at(f), cfg, refset, target.spec.n_params)
                    raw = forecast_task(target.at(f), raw_cfg, refset, target.spec.n_params) if refset else None
                    reasons.setdefault(mode, {})
                    reasons[mode][tf.reason or "published"] = reasons[mode].get(tf.reason or "published", 0) + 1
                    for method, rec in record(tf, raw, target.final).items():
                        if method == "evalcast_raw" and raw is None:
                            continue
                        cells.setdefault(mode, {}).setdefault(f"{f:g}", {}).setdefault(method, []).append(rec)
            print(f"family {seed} run {target.spec.name}: done ({time.time() - started:.0f}s)", flush=True)
    summary = {mode: {f: {m: score(v) for m, v in by_m.items()} for f, by_m in by_f.items()}
               for mode, by_f in cells.items()}
    for mode, by_f in summary.items():
        print(f"\n== references: {mode}")
        print(f"{'from':>5} {'method':<13} {'cases':>5} {'pub':>5} {'MAE':>7} {'MAE*':>7} {'cov80':>6} {'CI95':>13} "
              f"{'maxmiss':>7}")
        for f, by_m in by_f.items():
            for m, s in by_m.items():
                def fmt(v: float | None, w: int = 7) -> str:
                    return f"{v:{w}.3f}" if v is not None else " " * (w - 1) + "-"
                ci = s["coverage80_ci95"]
                ci_text = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-"
                print(f"{f:>5} {m:<13} {s['cases']:>5} {fmt(s['publication_rate'], 5)} {fmt(s['mae_published'])} "
                      f"{fmt(s['mae_refusals_at_last_value'])} {fmt(s['coverage80'], 6)} "
                      f"{ci_text:>13} {fmt(s['max_miss_outside80'])}")
    print("\nMAE*: refusals scored at the last value. Reasons:", json.dumps(reasons))
    out = {"benchmark": "forecast_sim", "families": n_fam, "runs_per_family": 5, "fractions": list(FRACTIONS),
           "family": {"question_spread": family.question_spread, "shift_sd": family.shift_sd,
                      "proxy_noise": family.proxy_noise, "n_questions": family.n_questions,
                      "samples": family.samples},
           "n_bootstrap": cfg.n_bootstrap, "summary": summary, "reasons": reasons,
           "prepare_seconds_median": float(np.median(prep_seconds)) if prep_seconds else None,
           "wall_seconds": time.time() - started, "machine": platform.platform(),
           "note": "scored against each run's measured final pass@1; simulations are a sanity check only"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forecast_sim.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS / 'forecast_sim.json'}")


if __name__ == "__main__":
    main()
