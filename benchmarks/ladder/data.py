"""Questions, training streams (task mix + filler, optional drop), validation texts and LR schedules."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import torch

from benchmarks.ladder.config import TASKS, Preset, RunSpec
from evalcast.data.records import ExpertRecord
from evalcast.tasks import MixSchedule, get_task, training_batch, training_text

VALIDATION_SEED = 10_000
"""Data seed of the validation texts (training streams use the runs' own seeds, 0 and up)."""


def questions(preset: Preset) -> list[ExpertRecord]:
    """The held-out questions: ground truth, expert set (with negatives) and probe questions all come from here."""
    return [r for t in TASKS for r in get_task(t).sample(preset.questions_per_task, seed=preset.seed,
                                                          difficulties=preset.levels, negatives=preset.negatives)]


def filler_text(rng: random.Random) -> str:
    """A counting line (``count 37 38 39 ...``): after the first number every character is predictable."""
    start = rng.randint(0, 89)
    return "count " + " ".join(str(start + i) for i in range(rng.randint(7, 10)))


def mix_schedule(spec: RunSpec) -> MixSchedule:
    schedule = MixSchedule.constant(dict(spec.mix.tasks))
    if spec.drop is not None:
        task, fraction = spec.drop
        schedule = schedule.dropping(task, int(fraction * spec.steps))
    return schedule


def batch_texts(spec: RunSpec, preset: Preset, step: int, seed: int) -> list[str]:
    """The texts of one optimizer step: filler share first, then the task mix at that step."""
    n_filler = round(spec.mix.filler * preset.batch_size)
    rng = random.Random(f"filler:{seed}:{step}")
    texts = [filler_text(rng) for _ in range(n_filler)]
    return texts + training_batch(mix_schedule(spec), step, preset.batch_size - n_filler, seed, preset.levels)


class MixStream(torch.utils.data.IterableDataset):
    """Training examples that follow the run's mix step by step (the Trainer takes ``batch_size`` per step)."""

    def __init__(self, tokenizer: Any, spec: RunSpec, preset: Preset) -> None:
        self.tokenizer, self.spec, self.preset = tokenizer, spec, preset

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        from evalcast.toy import TextDataset

        step = 0
        while True:
            batch = TextDataset(self.tokenizer, batch_texts(self.spec, self.preset, step, self.spec.seed),
                                self.preset.seq_length)
            yield from (batch[i] for i in range(len(batch)))
            step += 1


def common_validation_texts(preset: Preset) -> list[str]:
    """The validation text of every run, whatever its mix or seed: task text only (every task in equal shares,
    no filler), the questions that follow the ground truth's in the same held-out streams (so no run trains on
    them, none is a ground-truth question, and they spread over the levels like the ground truth)."""
    per_task = -(-preset.val_texts // len(TASKS))
    texts: list[str] = []
    for task in TASKS:
        family = get_task(task)
        truth = {r.prompt for r in family.sample(preset.questions_per_task, seed=preset.seed,
                                                 difficulties=preset.levels)}
        following = family.sample(preset.questions_per_task + per_task, seed=preset.seed, difficulties=preset.levels)
        texts += [training_text(r) for r in following if r.prompt not in truth][:per_task]
    return texts


def mix_validation_texts(spec: RunSpec, preset: Preset) -> list[str]:
    """Held-out text of the run's own (initial) mix, filler included: another data seed of the training
    stream, as a practitioner's validation split of their own data (not comparable across mixes)."""
    out: list[str] = []
    step = 0
    while len(out) < preset.val_texts:
        out += batch_texts(spec, preset, step, seed=VALIDATION_SEED + preset.seed)
        step += 1
    return out[:preset.val_texts]


def lr_lambda(spec: RunSpec, preset: Preset) -> Callable[[int], float]:
    """The LR multiplier per step of the run's schedule (a plain function: ``LambdaLR`` and evalcast read it)."""
    total, warm = spec.steps, max(1, int(preset.warmup * spec.steps))

    def cosine(step: int, end: int) -> float:
        progress = min(1.0, (step - warm) / max(1, end - warm))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if spec.schedule == "cosine":
            return cosine(step, total)
        if spec.schedule == "plateau":
            return cosine(step, int(preset.plateau_at * total))
        if spec.schedule == "wsd":
            start = int((1.0 - preset.cooldown) * total)
            return 1.0 if step < start else max(0.0, (total - step) / (total - start))
        return 1.0

    return factor
