"""The model-ladder benchmark, end to end: train every run (two at a time), time the proxy pass against
generation (``speed.py``), analyse, write ``benchmarks/results/ladder.json`` and the ``ladder_*.png`` plots.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/run.py --smoke   # < 3 min, tests the pipeline
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/run.py --full --work /path/to/runs   # < 60 min on 2 cores

Every training process uses one thread; ``--workers`` processes run side by side (default 2). After training,
``summary.py``'s table (what every run directory holds, final true pass@1, times) is printed and written to
``<work>/summary.json`` before the analysis starts.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.ladder.config import PRESETS, REPO, RESULTS, Preset, RunSpec
from benchmarks.ladder.train import TRUTH, train_run


def _cost(spec: RunSpec, preset: Preset) -> float:
    """Rough time in seconds, to start the longest runs first: steps and saves both cost about in proportion
    to the non-embedding parameters above a fixed overhead."""
    n = spec.size.n_nonembedding
    return spec.steps * (0.03 + 3.0e-7 * n) + preset.saves * (2 + 4e-6 * n)


def train_all(preset: Preset, root: Path, console: Console, only: list[str] | None = None) -> float:
    """Train every run of the preset (or the ``only`` ones), ``preset.workers`` at a time; returns the wall time."""
    started = time.perf_counter()
    unknown = sorted(set(only or ()) - {s.name for s in preset.runs})
    if unknown:
        raise ValueError(f"--only: no run {unknown} in preset {preset.name}; runs: {[s.name for s in preset.runs]}")
    chosen = [s for s in preset.runs if only is None or s.name in only]
    specs = sorted(chosen, key=lambda s: _cost(s, preset), reverse=True)
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
    which.add_argument("--full", action="store_true", help="the benchmark (< 60 min on 2 cores)")
    parser.add_argument("--work", type=Path, help="run directories (default benchmarks/ladder/runs/<preset>)")
    parser.add_argument("--results", type=Path, help="results folder (default: benchmarks/results for --full, "
                                                     "<work>/results for --smoke)")
    parser.add_argument("--workers", type=int, help="parallel training processes (default 2)")
    parser.add_argument("--skip-training", action="store_true", help="analyse the existing run directories only")
    parser.add_argument("--only", nargs="+", metavar="RUN", help="train only these runs (e.g. to redo a failed one)")
    parser.add_argument("--no-analysis", action="store_true", help="train and summarise, do not analyse")
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
        train_s = train_all(preset, work, console, args.only)
        console.print(f"trained in {train_s:.0f} s")
    from benchmarks.ladder.summary import summary, table

    data = summary(work, preset)
    (work / "summary.json").write_text(json.dumps(data, indent=1))
    console.print(table(data))
    if data["missing_runs"] or data["incomplete_runs"]:
        console.print(f"[red]missing runs {data['missing_runs']}, incomplete runs {data['incomplete_runs']}[/red]")
    if args.no_analysis:
        return

    from benchmarks.ladder.analyze import analyze_and_write

    analyze_and_write(work, results, preset, console, with_speed=True,
                      timing={"train_s": train_s, "started": started})


if __name__ == "__main__":
    main()
