"""What the ladder trains: presets (smoke, full), the runs each one holds and their tuning / held-out roles."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
TASKS = ("add", "sort", "chain")
"""The ``evalcast.tasks`` families trained and evaluated. A family named here joins every mix (equal weight),
the ground-truth questions, the expert set and the common validation text; nothing else needs to change."""

Schedule = Literal["cosine", "constant", "wsd", "plateau"]
Role = Literal["tuning", "heldout"]
Group = Literal["ladder", "seed", "schedule", "drop", "plateau"]


@dataclass(frozen=True)
class Size:
    """A char-level GPT-2 shape (the output head is tied to the token embedding)."""

    name: str
    n_layer: int
    n_embd: int
    n_head: int = 4

    def __post_init__(self) -> None:
        if self.n_layer < 1 or self.n_embd < 1 or self.n_head < 1 or self.n_embd % self.n_head:
            raise ValueError(f"Size {self.name!r}: n_layer, n_embd, n_head must be >= 1 with n_embd divisible by "
                             f"n_head, got {self.n_layer}, {self.n_embd}, {self.n_head}")

    @property
    def n_nonembedding(self) -> int:
        """Parameters outside the token and position embeddings: per block 12·d² + 13·d (attention, MLP,
        biases, two layer norms), plus the final layer norm."""
        d = self.n_embd
        return self.n_layer * (12 * d * d + 13 * d) + 2 * d


@dataclass(frozen=True)
class Mix:
    """Task weights plus a share of "filler" text (counting sequences: easy to predict, no task skill).

    The filler lowers the loss of a mix without teaching any task, so the validation losses of
    different mixes, each on its own mix, are not comparable: the realistic case where loss fails at data
    selection. The common validation text (held-out task text, no filler) is the same for every mix.
    """

    name: str
    tasks: tuple[tuple[str, float], ...] = tuple((t, 1.0) for t in TASKS)
    filler: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.filler < 1.0:
            raise ValueError(f"Mix {self.name!r}: filler must be in [0, 1), got {self.filler}")


@dataclass(frozen=True)
class RunSpec:
    """One training run.

    schedule: ``cosine`` (warm-up, cosine to 0), ``constant`` (warm-up, constant), ``wsd`` (warm-up, stable,
        linear cool-down over the last ``cooldown`` share), ``plateau`` (a cosine that reaches 0 at
        ``plateau_at`` of the budget and stays there: nothing is learnt after).
    drop: ``(task, fraction)``: the task leaves the mix at that fraction of the budget.
    seed: model initialisation and training-data order (the questions and validation texts are the preset's).
    role: ``tuning`` (defaults, thresholds, windows, proxy lists and gates may be chosen on it) or ``heldout``
        (only scored).
    """

    name: str
    size: Size
    mix: Mix
    steps: int
    schedule: Schedule = "cosine"
    drop: tuple[str, float] | None = None
    group: Group = "ladder"
    """``ladder`` (the size × mix grid, cosine), ``seed`` (a grid run's twin with another seed), ``schedule``
    (constant / WSD variants), ``drop`` (a task leaves the mix) or ``plateau`` (LR at 0 early)."""
    seed: int = 0
    role: Role = "tuning"
    forecast_every: int = 10
    """Online forecasts at every n-th save (each costs seconds; the analysis recomputes forecasts offline)."""

    def __post_init__(self) -> None:
        checks = {"steps": self.steps >= 1, "schedule": self.schedule in get_args(Schedule),
                  "group": self.group in get_args(Group), "role": self.role in get_args(Role),
                  "seed": self.seed >= 0, "forecast_every": self.forecast_every >= 1,
                  "drop": self.drop is None or (self.drop[0] in dict(self.mix.tasks) and 0 < self.drop[1] < 1)}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"RunSpec {self.name!r}: {name}={getattr(self, name)!r} is out of range")

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
    saves: int = 30
    """Checkpoints per run, evenly spaced (every run's steps are a multiple)."""
    levels: tuple[int, ...] = (1, 2, 3)
    questions_per_task: int = 80
    """Ground-truth questions per task (the expert set holds exactly these, with negatives)."""
    negatives: tuple[str, ...] = ("wrong_answer",)
    """Negative categories of the expert set (one pair per question and category)."""
    anchor_every: int = 2
    anchor_questions: int = 192
    """evalcast's anchor (= probe) question subset, chosen by evalcast among the ground-truth questions."""
    probe_heldout: float = 0.4
    """``ProbeConfig.heldout_fraction``: the share of probe questions the probe never trains on."""
    val_texts: int = 240
    """Texts of each validation set (the common one: the same number per task, so a multiple of the tasks)."""
    max_new_tokens: int = 60
    """Greedy generation length limit (ground truth and anchors): above the longest expert solution."""
    gen_batch: int = 128
    n_bootstrap: int = 200
    """Bootstrap replicates of the offline forecasts."""
    horizons: tuple[float, ...] = (0.1, 0.25, 0.5)
    compute_points: int = 6
    seed: int = 0
    """Seed of the questions and of the validation texts (the same for every run)."""
    workers: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [r.name for r in self.runs]
        if len(set(names)) != len(names):
            raise ValueError(f"Preset {self.name!r}: run names must be unique, got {names}")
        for r in self.runs:
            if r.steps % self.saves:
                raise ValueError(f"Preset {self.name!r}: run {r.name!r} has {r.steps} steps, not a multiple of "
                                 f"saves={self.saves} (evenly spaced checkpoints, the last at the end)")
        checks = {"saves": self.saves >= 1, "anchor_every": self.anchor_every >= 1,
                  "probe_heldout": 0.0 < self.probe_heldout < 1.0, "questions_per_task": self.questions_per_task >= 1,
                  "val_texts": self.val_texts >= len(TASKS) and self.val_texts % len(TASKS) == 0,
                  "workers": self.workers >= 1}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"Preset {self.name!r}: {name}={getattr(self, name)!r} is out of range")

    def save_every(self, spec: RunSpec) -> int:
        return spec.steps // self.saves

    def role(self, role: Role) -> tuple[RunSpec, ...]:
        return tuple(r for r in self.runs if r.role == role)


MIX_A = Mix("A")
MIX_B = Mix("B", filler=0.5)


def split_problems(preset: Preset) -> list[str]:
    """Why the preset's tuning / held-out split cannot carry the scoring protocol (empty when it can).

    Held-out runs cover every schedule and the largest size; tuning runs cover every schedule too (so that
    schedule-dependent settings can be chosen); each held-out run has, among the other runs, one of its size
    and one of its schedule at another size (leave-one-run-out references), and each held-out run of the
    largest size a smaller run of its schedule and mix ("smaller → larger"); every drop and plateau study
    has a tuning run beside its held-out one.
    """
    problems = []
    heldout, tuning = preset.role("heldout"), preset.role("tuning")
    schedules = {r.schedule for r in preset.runs}
    for role, runs in (("held-out", heldout), ("tuning", tuning)):
        missing = schedules - {r.schedule for r in runs}
        if missing:
            problems.append(f"no {role} run with schedule(s) {sorted(missing)}")
    largest = max(r.size.n_nonembedding for r in preset.runs)
    if not any(r.size.n_nonembedding == largest for r in heldout):
        problems.append("no held-out run of the largest size")
    for r in heldout:
        others = [o for o in preset.runs if o.name != r.name]
        if not any(o.size == r.size for o in others):
            problems.append(f"{r.name}: no other run of size {r.size.name}")
        if not any(o.schedule == r.schedule and o.size != r.size for o in others):
            problems.append(f"{r.name}: no run of schedule {r.schedule} at another size")
        smaller = [o for o in others if o.size.n_nonembedding < r.size.n_nonembedding]
        if r.size.n_nonembedding == largest and not any(o.schedule == r.schedule and o.mix == r.mix
                                                         for o in smaller):
            problems.append(f"{r.name}: no smaller run with schedule {r.schedule} and mix {r.mix.name}")
        if r.group in ("drop", "plateau") and not any(o.group == r.group for o in tuning):
            problems.append(f"{r.name}: no tuning run in group {r.group}")
    return problems


def _ladder(sizes: tuple[Size, ...], steps: int, heldout: set[str], **kw: Any) -> tuple[RunSpec, ...]:
    """The size × mix grid (cosine, seed 0)."""
    return tuple(RunSpec(f"{s.name}-{m.name}", s, m, steps, role="heldout" if f"{s.name}-{m.name}" in heldout
                         else "tuning", **kw) for s in sizes for m in (MIX_A, MIX_B))


def _variants(size: Size, steps: int, roles: dict[str, Role], **kw: Any) -> tuple[RunSpec, ...]:
    """Mix-A runs of one size that differ from its grid run in one thing: seed, schedule, a dropped task or an
    early plateau, each with the role given (``roles`` keys: ``s1``, ``wsd``, ``const``, ``drop``, ``plateau``)."""
    variants = {
        "s1": dict(seed=1, group="seed"),
        "wsd": dict(schedule="wsd", group="schedule"),
        "const": dict(schedule="constant", group="schedule"),
        "drop": dict(schedule="constant", drop=("sort", 0.5), group="drop"),
        "plateau": dict(schedule="plateau", group="plateau", forecast_every=2),
    }
    return tuple(RunSpec(f"{size.name}-A-{key}", size, MIX_A, steps, role=role, **{**kw, **variants[key]})
                 for key, role in roles.items())


def full() -> Preset:
    """Nineteen runs: four sizes spanning 11× in non-embedding parameters, both mixes, seeds, three LR
    schedules, a dropped task and an early plateau (see the README's table for the roles and the why)."""
    xs, s, m, lg = Size("XS", 2, 40), Size("S", 2, 64), Size("M", 3, 80), Size("L", 4, 96)
    steps = 1800
    runs = (
        *_ladder((xs, s, m, lg), steps, heldout={"XS-A", "S-B", "M-A", "L-B"}),
        *_variants(s, steps, {"s1": "tuning", "wsd": "tuning", "const": "heldout", "drop": "tuning",
                              "plateau": "tuning"}),
        *_variants(m, steps, {"s1": "heldout", "wsd": "heldout", "const": "tuning", "drop": "heldout",
                              "plateau": "heldout"}),
        *_variants(lg, steps, {"wsd": "heldout"}),
    )
    return Preset("full", runs)


def smoke() -> Preset:
    """Nine tiny runs that exercise every section and both roles in a few minutes (not for figures)."""
    s, m = Size("S", 1, 32, 2), Size("M", 2, 32, 2)
    steps = 160
    runs = (
        *_ladder((s, m), steps, heldout={"S-B", "M-A"}, forecast_every=4),
        *_variants(s, steps, {"const": "tuning", "drop": "tuning", "plateau": "tuning"}, forecast_every=4),
        *_variants(m, steps, {"const": "heldout", "drop": "heldout", "plateau": "heldout"}, forecast_every=4),
    )
    return Preset("smoke", runs, batch_size=16, lr=5e-3, saves=20, levels=(1,), questions_per_task=8,
                  anchor_questions=24, val_texts=24, max_new_tokens=32, gen_batch=64, n_bootstrap=20,
                  compute_points=3)


PRESETS = {"smoke": smoke, "full": full}
