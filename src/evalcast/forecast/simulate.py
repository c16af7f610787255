"""Synthetic training runs with known ground truth, for tests, calibration checks and demos.

The proxy (an NLL-like series) follows the LR-annealing law on the run's schedule with multiplicative
noise. Each question ``q`` has a difficulty ``d_q``; its pass@1 at checkpoint ``c`` is
``g + (1 − g)·σ(κ·(θ_c − d_q))`` with ability ``θ_c`` falling linearly in the noise-free proxy. Anchors
sample ``samples`` generations per question; the truth is the mean pass@1 over the questions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from evalcast.forecast.inputs import Anchor, Checkpoints, Schedule, TaskInputs
from evalcast.forecast.schedule import annealing_areas


@dataclass(frozen=True)
class SimSpec:
    """Parameters of a synthetic run (defaults: a small cosine-decayed run reaching ~0.5 pass@1)."""

    steps: int = 4000
    n_checkpoints: int = 40
    schedule: Literal["cosine", "constant", "wsd"] = "cosine"
    warmup: float = 0.02
    min_lr: float = 0.1
    cooldown: float = 0.2
    tokens_per_step: float = 4096.0
    e: float = 0.6
    a: float = 1.2
    alpha: float = 0.5
    anneal_drop: float = 0.12
    """Loss drop the annealing adds by the end of the budget (C of the law)."""
    decay: float = 0.999
    proxy_noise: float = 0.004
    n_questions: int = 200
    difficulty: tuple[float, ...] = ()
    """Planted difficulty levels (questions split evenly); empty: normal difficulties."""
    difficulty_spread: float = 1.0
    kappa: float = 3.0
    ability_scale: float = 4.0
    ability_mid: float = 0.8
    """Proxy value at which a question of difficulty 0 is solved half the time."""
    samples: int = 4
    anchors: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.4, 0.6, 0.8, 1.0)
    """Fractions of the run at which anchors are evaluated (nearest checkpoint)."""
    probe_noise: float = 0.6
    chance: float = 0.0
    seed: int = 0


@dataclass(frozen=True, eq=False)
class SimRun:
    """A full simulated run: the inputs at its end, and the truth per checkpoint."""

    spec: SimSpec
    inputs: TaskInputs
    true_proxy: np.ndarray
    true_accuracy: np.ndarray

    @property
    def final(self) -> float:
        return float(self.true_accuracy[-1])

    def at(self, fraction: float) -> TaskInputs:
        """The inputs as seen when ``fraction`` of the budget has been trained."""
        full = self.inputs
        n = int(np.sum(np.asarray(full.checkpoints.x) <= fraction * full.checkpoints.x_end + 1e-9))
        ck = full.checkpoints
        cut = Checkpoints(np.asarray(ck.x)[:n], np.asarray(ck.step)[:n], ck.x_end, ck.schedule)
        return replace(full, checkpoints=cut, anchors=[a for a in full.anchors if a.index < n],
                       proxies={k: np.asarray(v)[:n] for k, v in full.proxies.items()},
                       losses={k: np.asarray(v)[:n] for k, v in full.losses.items()},
                       probe_accuracy=None if full.probe_accuracy is None else np.asarray(full.probe_accuracy)[:n],
                       probe_per_question=None if full.probe_per_question is None else
                       {q: np.asarray(v)[:n] for q, v in full.probe_per_question.items()})


def lr_schedule(spec: SimSpec) -> np.ndarray:
    """Learning rate per step: linear warmup, then cosine to ``min_lr``, constant, or WSD cool-down."""
    s = np.arange(spec.steps + 1, dtype=float)
    warm = max(1.0, spec.warmup * spec.steps)
    prog = np.clip((s - warm) / (spec.steps - warm), 0.0, 1.0)
    if spec.schedule == "cosine":
        body = spec.min_lr + (1 - spec.min_lr) * 0.5 * (1 + np.cos(np.pi * prog))
    elif spec.schedule == "wsd":
        start = 1.0 - spec.cooldown
        body = np.where(prog < start, 1.0, 1.0 - (1 - spec.min_lr) * (prog - start) / spec.cooldown)
    else:
        body = np.ones_like(s)
    return np.where(s < warm, (s + 1) / warm, body) * 1e-3


def simulate_run(spec: SimSpec = SimSpec()) -> SimRun:
    """Simulate a run per ``spec`` (deterministic given ``spec.seed``)."""
    rng = np.random.default_rng(spec.seed)
    lr = lr_schedule(spec)
    s1, s2 = annealing_areas(lr, spec.decay)
    step = np.linspace(spec.steps / spec.n_checkpoints, spec.steps, spec.n_checkpoints).round().astype(int)
    s2n = s2 / s2[-1] if s2[-1] > 0 else s2
    true_proxy = spec.e + spec.a * (s1[step] / s1[step[0]]) ** -spec.alpha - spec.anneal_drop * s2n[step]
    proxy = true_proxy * np.exp(spec.proxy_noise * rng.standard_normal(step.size))
    if spec.difficulty:
        d = np.repeat(np.asarray(spec.difficulty), -(-spec.n_questions // len(spec.difficulty)))[: spec.n_questions]
    else:
        d = spec.difficulty_spread * rng.standard_normal(spec.n_questions)
    theta = spec.ability_scale * (spec.ability_mid - true_proxy)
    logits = spec.kappa * (theta[None, :] - d[:, None])
    p = spec.chance + (1 - spec.chance) / (1 + np.exp(-logits))
    truth = p.mean(axis=0)
    qids = [f"q{i:04d}" for i in range(spec.n_questions)]
    idx = sorted({int(np.argmin(np.abs(step / spec.steps - f))) for f in spec.anchors})
    anchors = []
    for i in idx:
        outcome = rng.binomial(spec.samples, p[:, i]) / spec.samples
        anchors.append(Anchor(i, float(outcome.mean()), spec.n_questions, dict(zip(qids, map(float, outcome)))))
    probe_logit = np.log(p / (1 - p)) + spec.probe_noise * rng.standard_normal(p.shape)
    probe = 1 / (1 + np.exp(-probe_logit))
    x = step * spec.tokens_per_step
    proxies = {
        "nll": proxy,
        "top1": np.clip(0.9 - 0.5 * (true_proxy - spec.e) + 0.01 * rng.standard_normal(step.size), 0, 1),
        "noise": 1.0 + 0.05 * rng.standard_normal(step.size),
    }
    val_loss = 2.0 + 0.8 * (s1[step] / s1[step[0]]) ** -0.3 - 0.05 * s2n[step]
    inputs = TaskInputs(
        name="sim", checkpoints=Checkpoints(x, step, float(spec.steps * spec.tokens_per_step),
                                            Schedule(lr, np.arange(spec.steps + 1) * spec.tokens_per_step)),
        proxies=proxies, anchors=anchors,
        losses={"val_loss": val_loss * np.exp(0.002 * rng.standard_normal(step.size))},
        probe_accuracy=probe.mean(axis=0), probe_per_question=dict(zip(qids, probe)), chance=spec.chance)
    return SimRun(spec, inputs, true_proxy, truth)
