"""The model-ladder benchmark, end to end: train every run (two at a time), time the proxy pass against
generation (``speed.py``), analyse, write ``benchmarks/results/ladder.json`` and the ``ladder_*.png`` plots.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/run.py --smoke   # < 3 min, tests the pipeline
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/run.py --full    # < 40 min on 2 cores

Every training process uses one thread; ``--workers`` processes run side by side (default 2).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.ladder.config import PRESETS, REPO, RESULTS, Preset, RunSpec
from benchmarks.ladder.train import TRUTH, train_run


def _cost(spec: RunSpec) -> float:
    """Rough wall time in seconds (measured step and save costs), to start the longest runs first."""
    return spec.steps * (0.067 + 7.7e-6 * spec.size.n_layer * spec.size.n_embd**2) + 150


def train_all(preset: Preset, root: Path, console: Console) -> float:
    """Train every run of the preset, ``preset.workers`` at a time; returns the wall time."""
    started = time.perf_counter()
    specs = sorted(preset.runs, key=_cost, reverse=True)
    context = multiprocessing.get_context("spawn")
    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ProcessPoolExecutor(preset.workers, mp_context=context) as pool, \
            Progress(*columns, console=console) as progress:
        futures: dict[str, Future[Path]] = {s.name: pool.submit(train_run, s, preset, root) for s in specs}
        bars = {s.name: progress.add_task(s.name, total=preset.saves) for s in specs}
        while not all(f.done() for f in futures.values()):
            for name, bar in bars.items():
                truth = root / name / TRUTH
                progress.update(bar, completed=len(truth.read_text().splitlines()) if truth.exists() else 0)
            time.sleep(1.0)
        for name, future in futures.items():
            future.result()  # re-raise a failed run
            progress.update(bars[name], completed=preset.saves)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--smoke", action="store_true", help="tiny everything (pipeline test, < 3 min)")
    which.add_argument("--full", action="store_true", help="the benchmark (< 40 min on 2 cores)")
    parser.add_argument("--work", type=Path, help="run directories (default benchmarks/ladder/runs/<preset>)")
    parser.add_argument("--results", type=Path, help="results folder (default: benchmarks/results for --full, "
                                                     "<work>/results for --smoke)")
    parser.add_argument("--workers", type=int, help="parallel training processes (default 2)")
    parser.add_argument("--skip-training", action="store_true", help="analyse the existing run directories only")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    preset = PRESETS["smoke" if args.smoke else "full"]()
    if args.workers:
        preset = Preset(**{**preset.__dict__, "workers": args.workers})
    work = args.work or REPO / "benchmarks" / "ladder" / "runs" / preset.name
    results = args.results or (RESULTS if args.full else work / "results")
    console = Console(width=None if sys.stdout.isatty() else 150)
    started = time.perf_counter()
    train_s = 0.0
    if not args.skip_training:
        console.print(f"[bold]ladder {preset.name}[/bold]: {len(preset.runs)} runs → {work}")
        train_s = train_all(preset, work, console)
        console.print(f"trained in {train_s:.0f} s")

    from benchmarks.ladder.analyze import analyze_and_write

    analyze_and_write(work, results, preset, console, with_speed=True,
                      timing={"train_s": train_s, "started": started})


if __name__ == "__main__":
    main()
