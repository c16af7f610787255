"""Families of simulated runs that share a task's accuracy link and the proxy's decay shape.

Each run (its size, schedule, budget, peak LR and seed in a :class:`SimRun`) has a loss-like task proxy
that follows the multi-power law in raw LR units with the family's decay shape and drop ratio, and run
parameters that improve with size: ``L0 = 0.8 + 0.9·(N/2e7)^(−0.35)``, ``A = 0.45·(N/2e7)^0.05``,
``α = 0.5 − 0.02·log2(N/2e7)``. Accuracy follows the family's link with a run-specific shift,
``p = g + (u − g)·σ(k·(y − mid − δ_run))``, ``δ_run ~ N(0, shift_sd²)``, per question with logit offsets
of spread ``question_spread`` (0: every question at p, so the link is exact). Anchors sample ``samples``
generations per question; the measured final is the anchor at the last checkpoint.

Proxies: ``nll`` (the proxy with multiplicative noise), ``prob`` (``exp(−y)`` with its own noise: bounded,
higher is better), ``drift`` (the proxy plus a large per-run offset: it tracks accuracy perfectly within
each run but not across runs) and ``noise``. The loss series ``val_loss`` follows the same law one nat
higher with a flatter exponent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from evalcast.forecast.inputs import Anchor, Checkpoints, Schedule, TaskInputs
from evalcast.forecast.multipower import DecayShape, mpl, schedule_terms
from evalcast.forecast.references import ReferenceRun, truncate
from evalcast.forecast.simulate import SimSpec, lr_schedule


@dataclass(frozen=True)
class SimFamily:
    """What the runs of a family share."""

    shape: DecayShape = DecayShape(C=2.0, beta=0.6, gamma=0.6, drop_ratio=300.0)
    link_k: float = -4.0
    """Slope of the link per unit of proxy (accuracy rises as the proxy falls)."""
    link_mid: float = 1.55
    """Proxy value where accuracy is halfway between floor and ceiling (mean over runs)."""
    shift_sd: float = 0.05
    chance: float = 0.0
    ceiling: float = 1.0
    proxy_noise: float = 0.004
    drift_sd: float = 0.3
    n_questions: int = 200
    samples: int = 4
    question_spread: float = 0.0
    n_checkpoints: int = 40
    anchors: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    task: str = "sim"


@dataclass(frozen=True)
class SimRun:
    """One run of a family."""

    name: str
    n_params: float
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    steps: int = 4000
    peak_lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True, eq=False)
class FamilyRun:
    """A simulated run: its inputs (full history), the truth per checkpoint and its measured final."""

    spec: SimRun
    inputs: TaskInputs
    true_proxy: np.ndarray
    true_accuracy: np.ndarray
    shift: float

    @property
    def final(self) -> float:
        """The measured final pass@1 (the last anchor), which forecasts are scored against."""
        return float(self.inputs.anchors[-1].accuracy)

    def reference(self) -> ReferenceRun:
        return ReferenceRun(self.spec.name, self.inputs, self.spec.n_params)

    def at(self, fraction: float) -> TaskInputs:
        """The inputs as seen when ``fraction`` of the budget has been trained."""
        return truncate(self.inputs, fraction)


def run_parameters(n_params: float) -> tuple[float, float, float]:
    """``(L0, A, α)`` of a run of ``n_params`` (raw LR units)."""
    r = n_params / 2e7
    return 0.8 + 0.9 * r**-0.35, 0.45 * r**0.05, 0.5 - 0.02 * np.log2(r)


def simulate_family_run(family: SimFamily, spec: SimRun) -> FamilyRun:
    """Simulate one run of ``family`` (deterministic given ``spec.seed``)."""
    rng = np.random.default_rng([spec.seed, int(spec.n_params) % 2**31, len(spec.name)])
    lr = lr_schedule(SimSpec(steps=spec.steps, schedule=spec.schedule)) * (spec.peak_lr / 1e-3)
    step = np.linspace(spec.steps / family.n_checkpoints, spec.steps, family.n_checkpoints).round().astype(int)
    terms = schedule_terms(lr, step)
    l0, a, alpha = run_parameters(spec.n_params)
    a_tilde = a * spec.peak_lr ** (-alpha)
    true_proxy = mpl(l0, a_tilde, alpha, family.shape, terms)
    val_loss = mpl(l0 + 1.0, a_tilde, 0.8 * alpha, family.shape, terms)
    shift = family.shift_sd * float(rng.standard_normal())
    offsets = family.question_spread * rng.standard_normal(family.n_questions)
    logits = family.link_k * (true_proxy[None, :] - family.link_mid - shift) + offsets[:, None]
    p = family.chance + (family.ceiling - family.chance) / (1.0 + np.exp(-logits))
    qids = [f"q{i:04d}" for i in range(family.n_questions)]
    anchors = []
    for i in sorted({int(np.argmin(np.abs(step / spec.steps - f))) for f in family.anchors}):
        outcome = rng.binomial(family.samples, p[:, i]) / family.samples
        anchors.append(Anchor(i, float(outcome.mean()), family.n_questions, dict(zip(qids, map(float, outcome)))))
    n = step.size
    proxies = {
        "nll": true_proxy * np.exp(family.proxy_noise * rng.standard_normal(n)),
        "prob": np.exp(-true_proxy) * np.exp(family.proxy_noise * rng.standard_normal(n)),
        "drift": (true_proxy + family.drift_sd * rng.standard_normal()) * np.exp(
            family.proxy_noise * rng.standard_normal(n)),
        "noise": 1.0 + 0.05 * rng.standard_normal(n),
    }
    x = step * 4096.0
    inputs = TaskInputs(
        name=family.task, checkpoints=Checkpoints(x, step, float(spec.steps * 4096.0),
                                                  Schedule(lr, np.arange(spec.steps + 1) * 4096.0)),
        proxies=proxies, anchors=anchors, losses={"val_loss": val_loss * np.exp(0.002 * rng.standard_normal(n))},
        chance=family.chance, ceiling=family.ceiling)
    return FamilyRun(spec, inputs, true_proxy, p.mean(axis=0), shift)


def default_runs(seed: int = 0, sizes: Sequence[float] = (2e7, 4e7, 8e7, 1.6e8, 3.2e8),
                 schedules: Sequence[str] = ("cosine", "wsd", "constant", "cosine")) -> list[SimRun]:
    """A ladder: each size with the next schedule in turn, budgets growing and peak LR falling with size."""
    runs = []
    for i, n in enumerate(sizes):
        sched = schedules[(i + seed) % len(schedules)]
        steps = int(3000 * (n / sizes[0]) ** 0.25)
        runs.append(SimRun(f"s{seed}-{int(n / 1e6)}M-{sched}", n, sched, steps,  # type: ignore[arg-type]
                            2e-3 * (n / sizes[0]) ** -0.25, seed))
    return runs


def simulate_family(family: SimFamily, runs: Sequence[SimRun]) -> list[FamilyRun]:
    return [simulate_family_run(family, r) for r in runs]
