"""Issue 12: forecasts of held-out ladder runs from reference runs, scored against their final true pass@1.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/refforecasts.py --preset full --work DIR [--out JSON]

Each held-out run (``role="heldout"``) is forecast at 10/25/50% of its budget, per group (``all`` and each
task), with three sets of references: ``loo`` (every other run of the preset), ``smaller`` (only runs of a
smaller model size) and ``none``. The references are prepared (proxy choice, shared decay shape, link,
conformal quantiles) from those runs only, so no cross-run choice sees the target run. The dropped-task run
is neither a target nor a reference (its mix changes half-way). Baselines (last value, loss two-step,
prior-only, pilot-ratio) are scored on the cases where evalcast published;
``mae_all_with_fallback`` scores every case, a refusal at the last-value
forecast.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.ladder.config import PRESETS, RESULTS, TASKS, Preset, RunSpec
from benchmarks.ladder.measures import clean, nanmean
from benchmarks.ladder.refcases import cut_at, run_inputs
from benchmarks.ladder.runs import Run, load_runs
from evalcast.forecast import (
    ForecastConfig,
    ReferenceConfig,
    ReferenceRun,
    TaskForecast,
    coverage_interval,
    forecast_task,
    prepare_references,
)

MODES = ("loo", "smaller", "none")
GROUPS = ("all", *TASKS)
BASELINES = ("last_value", "loss_twostep", "prior_only", "pilot_ratio")


def _method(result: TaskForecast, name: str, truth: float) -> dict[str, Any]:
    f = result.forecast if name == "evalcast" else result.baselines.get(name)
    ok = f is not None and f.ok and f.final is not None
    i80 = list(f.interval80) if ok and f is not None and f.interval80 else None
    return {
        "status": "ok" if ok else "refused",
        "reason": "" if ok or f is None else f.reason,
        "final": f.final if ok and f is not None else None,
        "interval80": i80,
        "error": abs(f.final - truth) if ok and f is not None and f.final is not None else None,
        "flags": [x for x in (f.flags if f is not None else ()) if x.startswith(("references", "conformal"))],
    }


@dataclass(frozen=True)
class Settings:
    """What the evaluation runs: the modes, a cap on the references (nearest in size first, then the target's
    schedule and mix; None: all), the forecast settings and where finished cases are appended (JSON lines)."""

    modes: tuple[str, ...] = MODES
    max_references: int | None = None
    config: ForecastConfig = ForecastConfig()
    log: Path | None = None


def references_of(target: RunSpec, runs: list[RunSpec], mode: str, k: int | None) -> list[RunSpec]:
    """The references of ``target`` in ``mode`` among ``runs`` (others but the dropped-task run), at most ``k``:
    nearest in size first, then those of its schedule and mix."""
    n = target.size.n_nonembedding
    if mode == "none":
        return []
    pool = [
        r for r in runs if r.name != target.name and r.drop is None and (mode == "loo" or r.size.n_nonembedding < n)
    ]

    def key(r: RunSpec) -> tuple[float, bool, bool, str]:
        return (abs(math.log(r.size.n_nonembedding / n)), r.schedule != target.schedule, r.mix != target.mix, r.name)

    return sorted(pool, key=key)[:k]


def forecast_target(
    path: str, others: list[str], preset: Preset, mode: str, settings: Settings
) -> list[dict[str, Any]]:
    """Every (group, horizon) case of one held-out run and reference mode (runs in a worker process)."""
    target, refs = Run.load(path), {r.name: r for r in map(Run.load, others)}
    config = settings.config
    n_target = float(target.spec.size.n_nonembedding)
    chosen = [
        refs[s.name] for s in references_of(target.spec, [r.spec for r in refs.values()], mode, settings.max_references)
    ]
    if mode != "none" and not chosen:
        return []
    full = {
        r.name: {t.name: t for t in run_inputs(r, preset, len(r.records), GROUPS, config, last_anchor=True)}
        for r in chosen
    }
    cuts = {
        h: {t.name: t for t in run_inputs(target, preset, cut_at(target, h), GROUPS, config)} for h in preset.horizons
    }
    cases: list[dict[str, Any]] = []
    for group in GROUPS:
        truth = float(target.true_pass(group)[-1])
        refset = (
            None
            if mode == "none"
            else prepare_references(
                [ReferenceRun(r.name, full[r.name][group], float(r.spec.size.n_nonembedding)) for r in chosen], config
            )
        )
        for h in preset.horizons:
            result = forecast_task(cuts[h][group], config, refset, n_target)
            cases.append(
                {
                    "mode": mode,
                    "run": target.name,
                    "group": group,
                    "horizon": h,
                    "truth": truth,
                    "schedule": target.spec.schedule,
                    "references": [r.name for r in chosen],
                    "proxy": result.proxy.name if result.proxy else None,
                    **{m: _method(result, m, truth) for m in ("evalcast", *BASELINES)},
                }
            )
        if settings.log is not None:  # per group, so that an interrupted evaluation keeps what it finished
            with open(settings.log, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(clean(c)) + "\n" for c in cases[-len(preset.horizons) :]))
    return cases


def summarise(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """evalcast's published share, MAE, worst error and 80% coverage (with its 95% binomial interval), and each
    baseline's MAE on the same published cases."""
    pub = [c for c in cases if c["evalcast"]["status"] == "ok"]
    errors = [c["evalcast"]["error"] for c in pub]
    with_interval = [c for c in pub if c["evalcast"]["interval80"]]
    hits = sum(c["evalcast"]["interval80"][0] <= c["truth"] <= c["evalcast"]["interval80"][1] for c in with_interval)
    misses = [
        max(c["evalcast"]["interval80"][0] - c["truth"], c["truth"] - c["evalcast"]["interval80"][1], 0.0)
        for c in with_interval
    ]
    out: dict[str, Any] = {
        "cases": len(cases),
        "published": len(pub),
        "mae": nanmean(errors),
        "worst": max(errors, default=None),
        "coverage80": hits / len(with_interval) if with_interval else None,
        "coverage80_ci": list(coverage_interval(hits, len(with_interval))) if with_interval else None,
        "max_miss80": max(misses, default=None),
    }
    for name in BASELINES:
        paired = [c[name]["error"] for c in pub if c[name]["status"] == "ok"]
        out[f"mae_{name}"] = nanmean(paired)
        out[f"n_{name}"] = len(paired)
    fallback = [c["evalcast"]["error"] if c["evalcast"]["status"] == "ok" else c["last_value"]["error"] for c in cases]
    out["mae_all_with_fallback"] = nanmean(e for e in fallback if e is not None)
    reasons: dict[str, int] = {}
    for c in cases:
        if c["evalcast"]["status"] != "ok":
            reasons[c["evalcast"]["reason"]] = reasons.get(c["evalcast"]["reason"], 0) + 1
    out["refusal_reasons"] = reasons
    return out


def evaluate(
    work: Path, preset: Preset, settings: Settings = Settings()
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The headline (by mode and horizon) and every case."""
    runs = load_runs(work)
    targets = [r for r in runs if r.spec.role == "heldout" and r.spec.drop is None]
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(preset.workers, mp_context=context) as pool:
        jobs = [
            pool.submit(
                forecast_target, str(t.path), [str(r.path) for r in runs if r.name != t.name], preset, mode, settings
            )
            for mode in settings.modes
            for t in targets
        ]
        cases = [c for j in jobs for c in j.result()]
    return headline(cases, preset, settings, [t.name for t in targets], len(runs), time.perf_counter() - started), cases


def headline(
    cases: list[dict[str, Any]], preset: Preset, settings: Settings, targets: list[str], n_runs: int, seconds: float
) -> dict[str, Any]:
    """Summaries by mode and horizon, and notes on what was run."""
    out: dict[str, Any] = {}
    for mode in settings.modes:
        out[mode] = {
            f"{round(100 * h)}": summarise([c for c in cases if c["mode"] == mode and c["horizon"] == h])
            for h in preset.horizons
        }
    no_smaller = sorted(set(targets) - {c["run"] for c in cases if c["mode"] == "smaller"})
    cap = settings.max_references
    out["notes"] = [
        f"targets: the {len(targets)} held-out runs but the dropped-task run ({', '.join(targets)}); groups "
        f"{', '.join(GROUPS)}; references from the other {n_runs - 1} runs of preset {preset.name}"
        + (f", at most {cap} per target (nearest in size, then its schedule and mix)" if cap else ""),
        f"'smaller' leaves out targets with no smaller run: {', '.join(no_smaller) or 'none'}",
        "anchors: true pass@1 on every ground-truth question at every "
        f"{preset.anchor_every}nd save; a reference also at its last save (its final value)",
        "cross-run choices (proxy, decay shape, link, conformal quantiles) are fitted on the references only; "
        f"settings: ForecastConfig defaults but n_bootstrap={settings.config.n_bootstrap}, "
        f"ReferenceConfig.max_candidates={settings.config.references.max_candidates} (for time); nothing was tuned "
        "on these runs",
        "baseline MAEs are on the cases evalcast published (n_<baseline> of them); mae_all_with_fallback scores "
        "every case, a refusal at the last-value forecast",
        f"wall time {seconds:.0f} s on {preset.workers} workers",
    ]
    return clean(out)


def forecast_headline(work: Path, preset: Preset, modes: tuple[str, ...] = MODES,
                      max_references: int | None = None) -> dict[str, Any]:
    """``{"loo"|"smaller"|"none": {"10"|"25"|"50": summary}, "notes": [...]}`` for ``ladder.json``; a mode left
    out (for time) is ``None`` with a note."""
    settings = Settings(tuple(modes), max_references, ForecastConfig(n_bootstrap=preset.n_bootstrap))
    out = evaluate(work, preset, settings)[0]
    for mode in MODES:
        if mode not in modes:
            out[mode] = None
            out["notes"].append(f"{mode}: not run (analyze.py --forecast-modes left it out, for time)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--work", type=Path, required=True, help="the ladder run directories")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/ladder_forecast_references.json")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--max-references", type=int, help="at most this many references per target (for time)")
    parser.add_argument("--n-bootstrap", type=int, help="default: the preset's")
    parser.add_argument(
        "--max-candidates",
        type=int,
        default=ReferenceConfig().max_candidates,
        help="proxies compared by the references' backtest",
    )
    parser.add_argument("--log", type=Path, help="append finished cases here (JSON lines) as they come")
    parser.add_argument("--from-log", action="store_true", help="only summarise the cases in --log")
    args = parser.parse_args()
    preset = PRESETS[args.preset]()
    config = ForecastConfig(
        n_bootstrap=args.n_bootstrap or preset.n_bootstrap,
        references=ReferenceConfig(max_candidates=args.max_candidates),
    )
    settings = Settings(tuple(args.modes), args.max_references, config, args.log)
    if args.from_log:
        cases = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
        runs = load_runs(args.work)
        targets = [r.name for r in runs if r.spec.role == "heldout" and r.spec.drop is None]
        result = headline(cases, preset, settings, targets, len(runs), math.nan)
    else:
        result, cases = evaluate(args.work, preset, settings)
    out = args.out or RESULTS / "ladder_forecast_references.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"headline": result, "cases": clean(cases)}, indent=1))
    for mode in MODES:
        for h, s in result[mode].items():
            print(
                f"{mode:>7} @{h}%: published {s['published']}/{s['cases']}  MAE {s['mae']}  worst {s['worst']}  "
                f"cov80 {s['coverage80']} {s['coverage80_ci']}  last {s['mae_last_value']}  "
                f"loss2step {s['mae_loss_twostep']}  prior {s['mae_prior_only']}  pilot {s['mae_pilot_ratio']}  "
                f"all+fallback {s['mae_all_with_fallback']}"
            )
    print(f"written {out}")


if __name__ == "__main__":
    main()
