"""What the ladder trains: presets (smoke, full) and the runs each one holds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
TASKS = ("add", "sort", "chain")

Schedule = Literal["cosine", "constant", "wsd", "plateau"]


@dataclass(frozen=True)
class Size:
    """A char-level GPT-2 shape."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int = 4


@dataclass(frozen=True)
class Mix:
    """Task weights plus a share of "filler" text (counting sequences: easy to predict, no task skill).

    The filler lowers the loss of a mix without teaching any task, so the validation losses of
    different mixes are not comparable: the realistic case where loss fails at data selection.
    """

    name: str
    tasks: tuple[tuple[str, float], ...] = tuple((t, 1.0) for t in TASKS)
    filler: float = 0.0


@dataclass(frozen=True)
class RunSpec:
    """One training run.

    schedule: ``cosine`` (warm-up, cosine to 0), ``constant`` (warm-up, constant), ``wsd`` (warm-up, stable,
        linear cool-down over the last ``cooldown`` share), ``plateau`` (a cosine that reaches 0 at
        ``plateau_at`` of the budget and stays there: nothing is learnt after).
    drop: ``(task, fraction)``: the task leaves the mix at that fraction of the budget.
    """

    name: str
    size: Size
    mix: Mix
    steps: int
    schedule: Schedule = "cosine"
    drop: tuple[str, float] | None = None
    group: str = "ladder"
    """``ladder`` (the size × mix grid), ``drop``, ``plateau`` or ``schedule`` (schedule variants)."""
    forecast_every: int = 5
    """Online forecasts at every n-th save (each costs about a second per task)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        mix = d["mix"]
        return cls(**{**d, "size": Size(**d["size"]),
                      "mix": Mix(mix["name"], tuple(tuple(t) for t in mix["tasks"]), mix["filler"]),
                      "drop": tuple(d["drop"]) if d.get("drop") else None})


@dataclass(frozen=True)
class Preset:
    """Sizes of everything but the runs (shared by all runs of a preset)."""

    name: str
    runs: tuple[RunSpec, ...]
    batch_size: int = 32
    seq_length: int = 96
    lr: float = 3e-3
    warmup: float = 0.05
    cooldown: float = 0.2
    plateau_at: float = 0.4
    saves: int = 50
    """Checkpoints per run (every 2% of the budget with 50)."""
    levels: tuple[int, ...] = (1, 2, 3)
    questions_per_task: int = 60
    """Ground-truth questions per task (the expert set holds exactly these, with negatives)."""
    anchor_every: int = 2
    anchor_questions: int = 90
    val_texts: int = 256
    max_new_tokens: int = 64
    gen_batch: int = 64
    n_bootstrap: int = 200
    """Bootstrap replicates of the offline forecasts."""
    horizons: tuple[float, ...] = (0.1, 0.25, 0.5)
    compute_points: int = 6
    seed: int = 0
    workers: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def save_every(self, spec: RunSpec) -> int:
        return max(1, spec.steps // self.saves)


MIX_A = Mix("A")
MIX_B = Mix("B", filler=0.5)


def _grid(sizes: tuple[tuple[Size, int], ...], forecast_every: int) -> tuple[RunSpec, ...]:
    return tuple(RunSpec(f"{s.name}-{m.name}", s, m, steps, forecast_every=forecast_every)
                 for s, steps in sizes for m in (MIX_A, MIX_B))


def full() -> Preset:
    """Ten runs, about 35 minutes on two cores (sizes get more steps when smaller: the ladder's compute
    ranges overlap over ~20x, so runs can be compared at matched compute)."""
    s, m, lg = Size("S", 2, 48), Size("M", 2, 64), Size("L", 3, 96)
    ladder = _grid(((s, 1800), (m, 1500), (lg, 900)), forecast_every=5)
    extra = (
        RunSpec("M-A-drop", m, MIX_A, 1500, schedule="constant", drop=("sort", 0.5), group="drop", forecast_every=5),
        RunSpec("M-A-plateau", m, MIX_A, 1500, schedule="plateau", group="plateau", forecast_every=2),
        RunSpec("M-A-const", m, MIX_A, 1500, schedule="constant", group="schedule", forecast_every=5),
        RunSpec("M-A-wsd", m, MIX_A, 1500, schedule="wsd", group="schedule", forecast_every=5),
    )
    return Preset("full", ladder + extra)


def smoke() -> Preset:
    """Seven tiny runs that exercise every section in well under three minutes (not for figures)."""
    s, m = Size("S", 1, 32, 2), Size("M", 2, 32, 2)
    ladder = _grid(((s, 200), (m, 160)), forecast_every=4)
    extra = (
        RunSpec("M-A-drop", m, MIX_A, 160, schedule="constant", drop=("sort", 0.5), group="drop", forecast_every=4),
        RunSpec("M-A-plateau", m, MIX_A, 160, schedule="plateau", group="plateau", forecast_every=2),
        RunSpec("M-A-const", m, MIX_A, 160, schedule="constant", group="schedule", forecast_every=4),
    )
    return Preset("smoke", ladder + extra, batch_size=16, lr=5e-3, saves=20, levels=(1,), questions_per_task=8,
                  anchor_questions=18, val_texts=32, max_new_tokens=32, n_bootstrap=20, compute_points=3)


PRESETS = {"smoke": smoke, "full": full}
