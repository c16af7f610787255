"""Analyse finished ladder runs: ``benchmarks/results/ladder.json``, ``ladder_*.png`` and a headline table.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/analyze.py --preset full [--work DIR] [--results DIR]

Sections: ``proxies`` (within runs, across runs at matched compute, dropped task), ``speed`` (from
``ladder_speed.json``, see ``speed.py``), ``probe``, ``forecasts``, ``alerts``. Forecasts (the slow part)
run in worker processes, one run each.
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
from rich.table import Table
from tqdm.auto import tqdm

from benchmarks.ladder import plots
from benchmarks.ladder.alerts_study import alerts_section
from benchmarks.ladder.config import PRESETS, REPO, RESULTS, TASKS, Preset
from benchmarks.ladder.forecasts import forecast_section, run_forecasts
from benchmarks.ladder.measures import clean, nanmean
from benchmarks.ladder.probe_study import PROTOCOLS, probe_section, run_probe
from benchmarks.ladder.proxies import dropped_task, matched_compute, within_run
from benchmarks.ladder.runs import Run, load_runs
from benchmarks.ladder.speed import SMOKE, SpeedConfig, measure

SPEED = "ladder_speed.json"


def analyze_and_write(work: Path, results: Path, preset: Preset, console: Console, *, with_speed: bool,
                      timing: dict[str, float]) -> dict[str, Any]:
    """Every section, written to ``results/ladder.json`` with the plots beside it; prints the headline."""
    results.mkdir(parents=True, exist_ok=True)
    runs = load_runs(work)
    if not runs:
        raise FileNotFoundError(f"no finished run under {work}")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(preset.workers, mp_context=context) as pool:
        speed_job: Future[dict[str, Any]] | None = None
        if with_speed:
            speed_job = pool.submit(measure, SMOKE if preset.name == "smoke" else SpeedConfig())
        forecast_jobs = [pool.submit(run_forecasts, str(r.path), preset) for r in runs]
        probe_jobs = {name: [pool.submit(run_probe, str(r.path), name, preset.anchor_every) for r in runs]
                      for name in PROTOCOLS}
        within = within_run(runs)
        proxies = {"within_run": within, "matched_compute": matched_compute(runs, preset.compute_points),
                   "dropped_task": dropped_task(runs)}
        pairs = {name: {g: v["pair_accuracy"] for g, v in groups.items()} for name, groups in within["runs"].items()}
        alerts = alerts_section(runs)
        per_run = [j.result() for j in tqdm(forecast_jobs, desc="forecasts", leave=False)]
        probes = {name: [j.result() for j in tqdm(jobs, desc=f"probe {name}", leave=False)]
                  for name, jobs in probe_jobs.items()}
        probe = probe_section(runs, probes, pairs)
        speed = speed_job.result() if speed_job is not None else _stored_speed(results)
    if speed_job is not None:
        (results / SPEED).write_text(json.dumps(speed, indent=1))
    forecasts = forecast_section(per_run, preset)
    out = clean({
        "preset": preset.name, "runs": {r.name: _run_summary(r) for r in runs},
        "proxies": {**proxies, "speed": speed}, "probe": probe, "forecasts": forecasts, "alerts": alerts,
        "timing": {"train_s": timing.get("train_s"), "total_s": time.perf_counter() - timing["started"]}
        if "started" in timing else {},
    })
    out["headline"] = headline(out)
    (results / "ladder.json").write_text(json.dumps(out, indent=1))
    _plots(runs, out, preset, results)
    console.print(headline_table(out))
    console.print(f"results: {results / 'ladder.json'} (plots ladder_*.png beside it)")
    return out


def _stored_speed(results: Path) -> dict[str, Any]:
    path = results / SPEED
    return json.loads(path.read_text()) if path.exists() else {"status": "not measured: run speed.py"}


def _run_summary(r: Run) -> dict[str, Any]:
    return {"group": r.spec.group, "size": r.spec.size.__dict__, "mix": r.spec.mix.name, "schedule": r.spec.schedule,
            "drop": r.spec.drop, "steps": r.spec.steps, "saves": len(r.steps), "n_params": r.meta["n_params"],
            "n_nonembedding": r.meta["n_nonembedding"], "tokens_end": r.tokens[-1],
            "true_pass_end": {g: r.true_pass(g)[-1] for g in ("all", *TASKS)},
            "val_loss_end": r.metric("all", "val_loss")[-1], "wall_s": r.meta.get("wall_s")}


def _plots(runs: list[Run], out: dict[str, Any], preset: Preset, results: Path) -> None:
    plots.curves(runs, results / "ladder_curves.png")
    if "mean" in out["proxies"]["matched_compute"]:
        plots.selection(out["proxies"]["matched_compute"], results / "ladder_selection.png")
    for r in runs:
        if r.spec.drop is not None:
            plots.dropped(r, results / "ladder_drop.png")
        if r.spec.group == "plateau":
            plots.plateau(r, out["alerts"]["plateau"][r.name], preset.plateau_at, results / "ladder_plateau.png")
    plots.probe(out["probe"], runs, results / "ladder_probe.png")
    plots.fans(out["forecasts"], runs, results / "ladder_forecast_fans.png")
    plots.forecast_errors(out["forecasts"], results / "ladder_forecast_errors.png")


def headline(out: dict[str, Any]) -> dict[str, Any]:
    """The few figures the project's claims rest on, with targets where the brief sets them."""
    within = out["proxies"]["within_run"]["mean"]
    matched = out["proxies"]["matched_compute"].get("mean", {})
    drop = next(iter(out["proxies"]["dropped_task"].values()), {})
    fc = out["forecasts"]["by_horizon"]
    probe = {name: out["probe"][name]["pooled"] for name in ("first_third", "rolling")}
    plateau = next(iter(out["alerts"]["plateau"].values()), {})
    mix = next(iter(out["alerts"]["data_mix"].values()), {})
    speed = out["proxies"]["speed"]

    def task_mean(table: dict[str, dict[str, float]], metric: str) -> float | None:
        return clean(nanmean(table.get(t, {}).get(metric) for t in TASKS))

    forecasts = {}
    for h, s in fc.items():
        ev, loss = s["evalcast"], s["loss_twostep"]
        forecasts[h] = {"evalcast_mae": ev["mae"], "evalcast_worst": ev["worst"], "published": ev["published"],
                        "cases": s["cases"], "refusal_rate": ev["refusal_rate"], "coverage80": ev["coverage80"],
                        "loss_twostep_mae_paired": loss["mae_where_evalcast_published"],
                        "loss_twostep_mae": loss["mae"], "last_value_mae_paired": s["last_value"][
                            "mae_where_evalcast_published"]}
    return clean({
        "within_run_all": {m: within.get("all", {}).get(m) for m in ("nll", "top1", "pass@1_probe", "val_loss")},
        "matched_compute_all": {m: matched.get("all", {}).get(m) for m in
                                ("nll", "top1", "greedy_match", "bpb", "pass@1_probe", "val_loss", "train_loss")},
        "matched_compute_task_mean": {m: task_mean(matched, m) for m in ("nll", "top1", "greedy_match", "val_loss")},
        "dropped_task": {"task": drop.get("task"),
                         "true_pass": [drop.get("true_pass_at_drop"), drop.get("true_pass_end")],
                         "val_loss": [drop.get("val_loss_at_drop"), drop.get("val_loss_end")],
                         "rho_task_nll": drop.get("spearman_task_proxies", {}).get("nll"),
                         "rho_task_top1": drop.get("spearman_task_proxies", {}).get("top1"),
                         "rho_val_loss": drop.get("spearman_overall", {}).get("val_loss"),
                         "rho_train_loss": drop.get("spearman_overall", {}).get("train_loss")},
        "speed": {k: speed.get(k) for k in ("questions", "proxy_s", "generate_s", "speedup")},
        "probe_pooled": {name: {k: v.get(k) for k in ("auroc", "brier", "pass_at_1_error_mean")}
                         for name, v in probe.items()},
        "forecasts": forecasts,
        "plateau_stop": {rule: {k: v.get(k) for k in ("step", "fraction", "compute_saved")} |
                         {"pass_lost_all": v.get("pass_lost", {}).get("all")} for rule, v in plateau.items()},
        "data_mix": {k: mix.get(k) for k in ("domain", "drop_step", "detected_step", "delay_saves", "false_alarms")},
    })


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:.0%}" if pct else f"{v:.3g}" if isinstance(v, float) else str(v)


def headline_table(out: dict[str, Any]) -> Table:
    h = out["headline"]
    t = Table(title=f"model ladder ({out['preset']}): headline")
    t.add_column("section")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for m, v in h["within_run_all"].items():
        t.add_row("proxies: within run", f"mean oriented ρ({m}, true pass@1), all", _fmt(v))
    for m, v in h["matched_compute_all"].items():
        t.add_row("proxies: selection", f"ρ across ladder runs at matched compute: {m}", _fmt(v))
    d = h["dropped_task"]
    t.add_row("proxies: dropped task", f"{d['task']} true pass@1 at drop → end", " → ".join(map(_fmt, d["true_pass"])))
    t.add_row("", "val loss at drop → end", " → ".join(map(_fmt, d["val_loss"])))
    for k in ("rho_task_nll", "rho_task_top1", "rho_val_loss", "rho_train_loss"):
        t.add_row("", f"after the drop: {k}", _fmt(d[k]))
    s = h["speed"]
    t.add_row("speed (GSM8K)", f"{_fmt(s['questions'])} q: proxy s / generation s / speedup",
              f"{_fmt(s['proxy_s'])} / {_fmt(s['generate_s'])} / {_fmt(s['speedup'])}x")
    for name, p in h["probe_pooled"].items():
        t.add_row(f"probe ({name}, pooled)", "AUROC (≥0.80) / Brier / pass@1 error (≤0.05)",
                  f"{_fmt(p['auroc'])} / {_fmt(p['brier'])} / {_fmt(p['pass_at_1_error_mean'])}")
    for hz, f in sorted(h["forecasts"].items(), key=lambda kv: float(kv[0])):
        t.add_row(f"forecast from {float(hz):.0%}", "evalcast MAE / worst / published / coverage80",
                  f"{_fmt(f['evalcast_mae'])} / {_fmt(f['evalcast_worst'])} / {f['published']}/{f['cases']} / "
                  f"{_fmt(f['coverage80'], True)}")
        t.add_row("", "loss_twostep MAE (same cases) / last_value MAE (same cases)",
                  f"{_fmt(f['loss_twostep_mae_paired'])} / {_fmt(f['last_value_mae_paired'])}")
    for rule, v in h["plateau_stop"].items():
        t.add_row("alerts: plateau", f"{rule}: stop step / compute saved / pass@1 lost",
                  f"{_fmt(v['step'])} / {_fmt(v['compute_saved'], True)} / {_fmt(v['pass_lost_all'])}")
    m = h["data_mix"]
    t.add_row("alerts: data mix", f"{m['domain']}: drop step → detected step (delay saves, false alarms)",
              f"{_fmt(m['drop_step'])} → {_fmt(m['detected_step'])} "
              f"({_fmt(m['delay_saves'])}, {_fmt(m['false_alarms'])})")
    timing = out.get("timing") or {}
    if timing:
        t.add_row("wall time", "training / total (s)", f"{_fmt(timing.get('train_s'))} / {_fmt(timing.get('total_s'))}")
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--work", type=Path, help="run directories (default benchmarks/ladder/runs/<preset>)")
    parser.add_argument("--results", type=Path, help="default: benchmarks/results (full), <work>/results (smoke)")
    parser.add_argument("--speed", action="store_true", help="also measure speed.py (else read ladder_speed.json)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    preset = PRESETS[args.preset]()
    work = args.work or REPO / "benchmarks" / "ladder" / "runs" / preset.name
    results = args.results or (RESULTS if preset.name == "full" else work / "results")
    console = Console(width=None if sys.stdout.isatty() else 150)
    previous = results / "ladder.json"  # re-analysing the same runs: keep the training wall time they took
    train_s = json.loads(previous.read_text()).get("timing", {}).get("train_s") if previous.exists() else None
    analyze_and_write(work, results, preset, console, with_speed=args.speed,
                      timing={"started": time.perf_counter(), "train_s": train_s})


if __name__ == "__main__":
    main()
