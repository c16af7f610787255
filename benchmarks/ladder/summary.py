"""What a set of ladder run directories holds: per run its design (role, size, schedule, mix, seed), whether
every save was recorded (ground truth, evalcast record with the common validation loss, probe features),
the final true pass@1 per task, and the wall and CPU time; plus the idle-machine estimate of the training.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ladder/summary.py --preset full --work /work/ladder-runs/v2

Every run is one single-threaded process, so its CPU time is what it takes on a core of its own; the idle
estimate schedules those CPU times longest first on ``workers`` cores, as ``run.py`` starts them (wall time
measured on a shared machine is longer). Writes ``<work>/summary.json``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.ladder.config import PRESETS, REPO, TASKS, Preset
from benchmarks.ladder.runs import Run, load_runs
from benchmarks.ladder.train import TRUTH
from evalcast.runs import RunStore
from evalcast.runs.store import FEATURES


@dataclass(frozen=True)
class RunSummary:
    name: str
    role: str
    group: str
    size: str
    n_nonembedding: int
    steps: int
    schedule: str
    mix: str
    seed: int
    saves_truth: int
    saves_evalcast: int
    saves_features: int
    saves_val_loss: int
    saves_val_loss_mix: int
    anchors: int
    final_pass: dict[str, float]
    """True pass@1 at the last save: ``all`` and each task."""
    wall_s: float | None
    cpu_s: float | None

    def complete(self, saves: int) -> bool:
        return min(self.saves_truth, self.saves_evalcast, self.saves_features, self.saves_val_loss,
                   self.saves_val_loss_mix) == saves


def summarise(run: Run) -> RunSummary:
    store = RunStore(run.path / "evalcast")
    spec = run.spec
    features = sum(store.load_arrays(int(step), FEATURES) is not None for step in run.steps)
    return RunSummary(
        name=spec.name, role=spec.role, group=spec.group, size=spec.size.name,
        n_nonembedding=run.meta["n_nonembedding"], steps=spec.steps, schedule=spec.schedule, mix=spec.mix.name,
        seed=spec.seed, saves_truth=len((run.path / TRUTH).read_text().splitlines()),
        saves_evalcast=len(run.records), saves_features=features,
        saves_val_loss=int(np.isfinite(run.metric("all", "val_loss")).sum()),
        saves_val_loss_mix=int(np.isfinite(run.metric("all", "val_loss_mix")).sum()),
        anchors=sum(r.anchor is not None for r in run.records),
        final_pass={g: round(float(run.true_pass(g)[-1]), 4) for g in ("all", *TASKS)},
        wall_s=run.meta.get("wall_s"), cpu_s=run.meta.get("cpu_s"))


def idle_estimate(seconds: list[float], workers: int) -> float:
    """Makespan of the jobs started longest first, each on the first free worker."""
    finish = [0.0] * workers
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(finish, finish[0] + s)
    return max(finish)


def summary(work: Path, preset: Preset) -> dict[str, object]:
    runs = [summarise(r) for r in load_runs(work)]
    missing = sorted({r.name for r in preset.runs} - {r.name for r in runs})
    cpu = [r.cpu_s for r in runs if r.cpu_s is not None]
    return {
        "preset": preset.name, "work": str(work), "saves": preset.saves, "missing_runs": missing,
        "incomplete_runs": [r.name for r in runs if not r.complete(preset.saves)],
        "runs": [asdict(r) for r in runs],
        "train_cpu_s_total": sum(cpu),
        "train_idle_estimate_s": idle_estimate(cpu, preset.workers) if len(cpu) == len(runs) else None,
        "workers": preset.workers,
    }


def table(out: dict[str, object]) -> Table:
    t = Table(title=f"ladder {out['preset']}: runs in {out['work']}")
    for column in ("run", "role", "N (non-emb.)", "steps", "schedule", "mix", "seed", "saves t/e/f/v/m",
                   "anchors", *(f"pass@1 {g}" for g in ("all", *TASKS)), "wall s", "cpu s"):
        t.add_column(column, justify="left" if column in ("run", "role", "schedule") else "right")
    for r in out["runs"]:  # type: ignore[attr-defined]
        saves = "/".join(str(r[k]) for k in ("saves_truth", "saves_evalcast", "saves_features", "saves_val_loss",
                                              "saves_val_loss_mix"))
        t.add_row(r["name"], r["role"], f"{r['n_nonembedding']:,}", str(r["steps"]), r["schedule"], r["mix"],
                  str(r["seed"]), saves, str(r["anchors"]), *(f"{r['final_pass'][g]:.2f}" for g in ("all", *TASKS)),
                  f"{r['wall_s'] or 0:.0f}", f"{r['cpu_s'] or 0:.0f}")
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--work", type=Path, help="run directories (default benchmarks/ladder/runs/<preset>)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    preset = PRESETS[args.preset]()
    work = args.work or REPO / "benchmarks" / "ladder" / "runs" / preset.name
    out = summary(work, preset)
    (work / "summary.json").write_text(json.dumps(out, indent=1))
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table(out))
    console.print(f"missing runs: {out['missing_runs'] or 'none'}; incomplete: {out['incomplete_runs'] or 'none'}; "
                  f"training CPU {out['train_cpu_s_total']:.0f} s, idle-machine estimate on {out['workers']} "
                  f"workers {out['train_idle_estimate_s'] or float('nan'):.0f} s; written {work / 'summary.json'}")


if __name__ == "__main__":
    main()
