"""Analyse finished ladder runs: ``benchmarks/results/ladder.json``, ``ladder_*.png`` and the headline.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/analyze.py --preset full [--work DIR] [--results DIR]

Sections: ``proxies`` (within runs, ranking at matched compute, speed), ``dropped_task``, ``probe``,
``alerts``, ``forecasts`` (``forecasts.forecast_headline``), and ``headline``: the figures the README quotes,
every one from held-out runs (choices made on tuning runs), with ``headline_context`` (baselines, targets,
what was chosen where) beside it. ``readme_table.py`` renders the README rows from them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rich.console import Console
from tqdm.auto import tqdm

from benchmarks.ladder import forecasts as forecast_module
from benchmarks.ladder import plots
from benchmarks.ladder.alerts_study import alerts_section
from benchmarks.ladder.config import PRESETS, REPO, RESULTS, TASKS, Preset
from benchmarks.ladder.drop_study import dropped_task
from benchmarks.ladder.headline import headline
from benchmarks.ladder.measures import clean
from benchmarks.ladder.probe_study import PROTOCOLS, probe_section, run_probe
from benchmarks.ladder.proxies import choose_signs, matched_compute, within_run
from benchmarks.ladder.readme_table import rows, table
from benchmarks.ladder.runs import Run, load_runs
from benchmarks.ladder.speed import SMOKE, SpeedConfig, measure

SPEED = "ladder_speed.json"
#: References per forecast target (nearest in size first): all 18 would take hours on 2 cores.
FORECAST_MAX_REFERENCES = 4


def forecast_part(work: Path, preset: Preset, settings: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The forecast figures from ``forecasts.forecast_headline(work, preset)`` (held-out runs, by reference
    setting and horizon) and its notes; ``None`` with a note while that function does not exist or fails."""
    make = getattr(forecast_module, "forecast_headline", None)
    if make is None:
        return None, ["forecast: null: benchmarks/ladder/forecasts.py has no forecast_headline(work, preset) yet"]
    try:
        result = dict(make(work, preset, **settings))
    except Exception as error:  # a broken forecast study must not lose the other sections' figures
        return None, [f"forecast: null: forecast_headline failed: {type(error).__name__}: {error}"]
    notes = [str(n) for n in result.pop("notes", [])]
    return result, notes


def analyze_and_write(work: Path, results: Path, preset: Preset, console: Console, *, with_speed: bool,
                      timing: dict[str, float], forecast: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every section, written to ``results/ladder.json`` with the plots beside it; prints the headline."""
    results.mkdir(parents=True, exist_ok=True)
    found = load_runs(work)
    runs = [r for r in found if len(r.steps) == preset.saves]
    absent = sorted({s.name for s in preset.runs} - {r.name for r in runs})
    if not runs:
        raise FileNotFoundError(f"no finished run under {work}")
    roles = {r.spec.role for r in runs}
    if roles != {"tuning", "heldout"}:
        raise ValueError(f"{work}: runs of role(s) {sorted(roles)} only; the analysis needs tuning and held-out runs")
    signs = choose_signs([r for r in runs if not r.heldout and r.spec.drop is None])
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(preset.workers, mp_context=context) as pool:
        speed_job: Future[dict[str, Any]] | None = None
        if with_speed:
            speed_job = pool.submit(measure, SMOKE if preset.name == "smoke" else SpeedConfig())
        probe_jobs = {name: [pool.submit(run_probe, str(r.path), name) for r in runs] for name in PROTOCOLS}
        alerts = alerts_section(runs)
        proxies = {"orientation_of_open_metrics": signs, "orientation_chosen_on": "tuning runs",
                   "within_run": within_run(runs, signs),
                   "matched_compute": matched_compute(runs, preset.compute_points, signs)}
        drop = dropped_task(runs, signs, alerts["data_mix"])
        settings = {"max_references": FORECAST_MAX_REFERENCES, **(forecast or {})}
        forecast, extra_notes = forecast_part(work, preset, settings)
        probes = {name: [j.result() for j in tqdm(jobs, desc=f"probe {name}", leave=False)]
                  for name, jobs in probe_jobs.items()}
        speed = speed_job.result() if speed_job is not None else _stored_speed(results)
    if speed_job is not None:
        (results / SPEED).write_text(json.dumps(speed, indent=1))
    out = clean({
        "preset": preset.name, "runs": {r.name: _run_summary(r) for r in runs},
        "proxies": {**proxies, "speed": speed}, "dropped_task": drop, "probe": probe_section(runs, probes),
        "alerts": alerts, "forecasts": forecast, "timing": {"train_s": timing.get("train_s"),
                                                            "total_s": time.perf_counter() - timing["started"]}
        if "started" in timing else {},
    })
    if absent:
        out["absent_runs"] = absent
        extra_notes = [f"runs absent or unfinished at analysis time, left out of every figure: {absent}",
                          *extra_notes]
    out["headline"], out["headline_context"] = clean(headline(out, runs, forecast, extra_notes))
    (results / "ladder.json").write_text(json.dumps(out, indent=1))
    _plots(runs, out, preset, results)
    console.print(table(out))
    console.print("\n".join(rows(out)), soft_wrap=True, markup=False)
    console.print(f"results: {results / 'ladder.json'} (plots ladder_*.png beside it)")
    return out


def _stored_speed(results: Path) -> dict[str, Any]:
    path = results / SPEED
    return json.loads(path.read_text()) if path.exists() else {"status": "not measured: run speed.py"}


def _run_summary(r: Run) -> dict[str, Any]:
    return {"role": r.spec.role, "group": r.spec.group, "size": r.spec.size.__dict__, "mix": r.spec.mix.name,
            "schedule": r.spec.schedule, "drop": r.spec.drop, "steps": r.spec.steps, "saves": len(r.steps),
            "n_params": r.meta["n_params"], "n_nonembedding": r.meta["n_nonembedding"], "tokens_end": r.tokens[-1],
            "true_pass_end": {g: r.true_pass(g)[-1] for g in ("all", *TASKS)},
            "val_loss_end": r.metric("all", "val_loss")[-1], "wall_s": r.meta.get("wall_s")}


def _plots(runs: list[Run], out: dict[str, Any], preset: Preset, results: Path) -> None:
    plots.curves(runs, results / "ladder_curves.png")
    plots.selection(out["proxies"]["matched_compute"], results / "ladder_selection.png")
    held = [r for r in runs if r.spec.drop is not None and r.heldout]
    if held:
        plots.dropped(held[0], out["dropped_task"], results / "ladder_drop.png")
    for r in runs:
        if r.spec.group == "plateau" and r.heldout:
            plots.plateau(r, out["alerts"]["plateau"][r.name], preset.plateau_at, results / "ladder_plateau.png")
    plots.probe(out["probe"], runs, results / "ladder_probe.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--work", type=Path, help="run directories (default benchmarks/ladder/runs/<preset>)")
    parser.add_argument("--results", type=Path, help="default: benchmarks/results (full), <work>/results (smoke)")
    parser.add_argument("--speed", action="store_true", help="also measure speed.py (else read ladder_speed.json)")
    parser.add_argument("--forecast-modes", nargs="+", choices=("loo", "smaller", "none"),
                        help="reference settings of the forecast study (default all three)")
    parser.add_argument("--forecast-max-references", type=int,
                        help="at most this many references per target (nearest in size first; "
                             f"default {FORECAST_MAX_REFERENCES})")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    preset = PRESETS[args.preset]()
    work = args.work or REPO / "benchmarks" / "ladder" / "runs" / preset.name
    results = args.results or (RESULTS if preset.name == "full" else work / "results")
    console = Console(width=None if sys.stdout.isatty() else 150)
    previous = results / "ladder.json"  # re-analysing the same runs: keep the training wall time they took
    train_s = json.loads(previous.read_text()).get("timing", {}).get("train_s") if previous.exists() else None
    analyze_and_write(work, results, preset, console, with_speed=args.speed,
                      timing={"started": time.perf_counter(), "train_s": train_s},
                      forecast={k: v for k, v in {"modes": tuple(args.forecast_modes or ()),
                                                  "max_references": args.forecast_max_references}.items() if v})


if __name__ == "__main__":
    main()
