"""Training data for a task mix: texts formatted exactly as evalcast scores and generates them.

One training text is ``render_prompt(prompt) + solution``; the trainer appends the EOS token. Questions
come only from the training split (:func:`~evalcast.tasks.base.is_heldout` is false), so no held-out
question is ever trained on, whatever the seed. A :class:`MixSchedule` changes the mixture at given
steps, e.g. to drop a task midway. Batches are a pure function of ``(seed, step)``: a resumed run sees
the same data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from evalcast.data.formatting import PromptConfig, render_prompt
from evalcast.data.records import ExpertRecord
from evalcast.data.tokenize import TokenizeConfig
from evalcast.tasks.base import LEVELS
from evalcast.tasks.registry import TASKS, get_task

#: The default prompt format (prompt, newline, solution), as in :func:`evalcast.data.formatting.render_prompt`.
PLAIN = PromptConfig()


@dataclass(frozen=True)
class MixSchedule:
    """Mixture weights by step: each ``(start_step, {task: weight})`` phase holds until the next one starts.

    Weights need not sum to 1 (they are normalised); a weight of 0 leaves the task out.
    """

    phases: tuple[tuple[int, Mapping[str, float]], ...]

    def __post_init__(self) -> None:
        phases = tuple((int(start), dict(mix)) for start, mix in self.phases)  # own, picklable copies
        if not phases or phases[0][0] != 0:
            raise ValueError("MixSchedule: the first phase must start at step 0")
        starts = [start for start, _ in phases]
        if starts != sorted(set(starts)):
            raise ValueError(f"MixSchedule: phase starts must strictly increase, got {starts}")
        for start, mix in phases:
            unknown = sorted(set(mix) - set(TASKS))
            if unknown:
                raise ValueError(f"MixSchedule phase at step {start}: unknown task(s) {unknown}; "
                                 f"known: {sorted(TASKS)}")
            if any(not w >= 0 for w in mix.values()) or not sum(mix.values()) > 0:
                raise ValueError(f"MixSchedule phase at step {start}: weights must be >= 0 with a positive "
                                 f"sum, got {dict(mix)}")
        object.__setattr__(self, "phases", phases)

    @classmethod
    def constant(cls, mix: Mapping[str, float]) -> MixSchedule:
        return cls(((0, mix),))

    def dropping(self, task: str, at_step: int) -> MixSchedule:
        """This schedule with ``task``'s weight set to 0 from ``at_step`` on."""
        if task not in self.weights_at(at_step):
            raise ValueError(f"MixSchedule.dropping: task '{task}' is not in the mix at step {at_step}")
        phases = dict(self.phases)
        phases.setdefault(at_step, self._phase_at(at_step))
        return MixSchedule(tuple((start, {**mix, task: 0.0} if start >= at_step else mix)
                                 for start, mix in sorted(phases.items())))

    def _phase_at(self, step: int) -> Mapping[str, float]:
        if step < 0:
            raise ValueError(f"MixSchedule: steps start at 0, got {step}")
        return [mix for start, mix in self.phases if start <= step][-1]

    def weights_at(self, step: int) -> dict[str, float]:
        """Normalised weights of the tasks in the mix at ``step`` (zero weights left out)."""
        mix = self._phase_at(step)
        total = sum(mix.values())
        return {task: w / total for task, w in mix.items() if w > 0}


def training_text(record: ExpertRecord, fmt: PromptConfig = PLAIN) -> str:
    """``render_prompt(prompt) + solution``: the text scored by evalcast, without the EOS token (for a
    multiple-choice row: ``prompt + choice_delimiter + correct choice``, as its choices are scored)."""
    if record.is_choice:
        return record.prompt + TokenizeConfig().choice_delimiter + record.solution
    return render_prompt(record.prompt, fmt=fmt) + record.solution


def training_records(schedule: MixSchedule | Mapping[str, float], step: int, batch_size: int, seed: int = 0,
                     difficulties: Sequence[int] | None = None) -> list[ExpertRecord]:
    """The training questions of one step (train split only), deterministic in ``(seed, step)``."""
    if not isinstance(schedule, MixSchedule):
        schedule = MixSchedule.constant(schedule)
    weights = schedule.weights_at(step)
    levels = tuple(difficulties or LEVELS)
    rng = random.Random(f"train:{seed}:{step}")
    tasks = rng.choices(list(weights), weights=list(weights.values()), k=batch_size)
    return [get_task(task).draw(rng, rng.choice(levels), "train") for task in tasks]


def training_batch(schedule: MixSchedule | Mapping[str, float], step: int, batch_size: int, seed: int = 0,
                   difficulties: Sequence[int] | None = None, fmt: PromptConfig = PLAIN) -> list[str]:
    """The training texts of one step (see :func:`training_records`)."""
    return [training_text(r, fmt) for r in training_records(schedule, step, batch_size, seed, difficulties)]


def training_stream(schedule: MixSchedule | Mapping[str, float], batch_size: int, seed: int = 0,
                    start_step: int = 0, difficulties: Sequence[int] | None = None,
                    fmt: PromptConfig = PLAIN) -> Iterator[list[str]]:
    """Endless batches for steps ``start_step, start_step + 1, ...``."""
    step = start_step
    while True:
        yield training_batch(schedule, step, batch_size, seed, difficulties, fmt)
        step += 1


def training_texts(mix: Mapping[str, float], n: int, seed: int = 0, difficulties: Sequence[int] | None = None,
                   fmt: PromptConfig = PLAIN) -> list[str]:
    """A fixed corpus of ``n`` training texts drawn from ``mix``."""
    return training_batch(MixSchedule.constant(mix), 0, n, seed, difficulties, fmt)
