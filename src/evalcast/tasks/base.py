"""The task-family type, the fixed held-out split and the character set of the synthetic tasks.

A family turns ``(rng, difficulty)`` into a worked problem: a prompt, step lines and an exact answer.
Its solution is the step lines followed by ``#### <answer>`` (the GSM8K convention, so one answer
extractor serves every task). Which questions are held out is a pure function of the question text,
so no training seed can ever produce an evaluation question.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from evalcast.data.records import ExpertRecord, Negative
from evalcast.tasks.negatives import CATEGORIES, attach_negatives, make_negatives

Split = Literal["heldout", "train"]

#: Share of each family's question space reserved for evaluation (never generated for training).
HOLDOUT_FRACTION = 0.2

#: Every character a synthetic prompt or solution (negatives included) can contain.
CHARSET = string.digits + string.ascii_lowercase + "+-*=.,:;#?()[] \n"

#: Difficulty levels every family accepts.
LEVELS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Worked:
    """A worked problem: the question, its step lines (each ends in ``=<value>``) and the exact answer; a
    multiple-choice problem has no steps but ``choices`` and the index ``gold`` of the answer among them."""

    prompt: str
    steps: tuple[str, ...]
    answer: str
    choices: tuple[str, ...] = ()
    gold: int | None = None

    @property
    def solution(self) -> str:
        return "\n".join((*self.steps, f"#### {self.answer}"))


def question_hash(task: str, prompt: str) -> str:
    """Stable hex digest of a question, the basis of ids and of the held-out split."""
    return hashlib.blake2b(f"{task}\x00{prompt}".encode(), digest_size=16).hexdigest()


def is_heldout(task: str, prompt: str) -> bool:
    """Whether a question belongs to the evaluation split (a fixed ``HOLDOUT_FRACTION`` of all questions)."""
    return int(question_hash(task, prompt)[:8], 16) < HOLDOUT_FRACTION * 16**8


def split_of(task: str, prompt: str) -> Split:
    return "heldout" if is_heldout(task, prompt) else "train"


@dataclass(frozen=True)
class TaskFamily:
    """A synthetic task family.

    name: the record's ``task``; domain: slash path stored on records (``arith/add``);
    build: ``(rng, level) -> Worked``, deterministic given the rng state; description: one line.
    """

    name: str
    domain: str
    build: Callable[[random.Random, int], Worked]
    description: str = ""

    def make(self, rng: random.Random, difficulty: int) -> ExpertRecord:
        """One record at ``difficulty`` (either split; :meth:`sample` picks a split)."""
        if difficulty not in LEVELS:
            raise ValueError(f"task '{self.name}': difficulty must be one of {LEVELS}, got {difficulty!r}")
        worked = self.build(rng, difficulty)
        digest = question_hash(self.name, worked.prompt)
        if worked.choices:
            return ExpertRecord.multiple_choice(worked.prompt, worked.choices, worked.gold or 0, task=self.name,
                                                domain=self.domain, id=f"{self.name}-{difficulty}-{digest[:12]}",
                                                meta={"difficulty": difficulty, "n_steps": 0})
        return ExpertRecord(prompt=worked.prompt, solution=worked.solution, answer=worked.answer,
                            task=self.name, domain=self.domain, id=f"{self.name}-{difficulty}-{digest[:12]}",
                            meta={"difficulty": difficulty, "n_steps": len(worked.steps)})

    def draw(self, rng: random.Random, difficulty: int, split: Split, max_tries: int = 1000) -> ExpertRecord:
        """One record from ``split``, by rejection (about 1 in 5 draws is held out)."""
        for _ in range(max_tries):
            record = self.make(rng, difficulty)
            if split_of(self.name, record.prompt) == split:
                return record
        raise RuntimeError(f"task '{self.name}' level {difficulty}: no {split} question in {max_tries} draws")

    def sample(self, n: int, seed: int = 0, difficulties: Sequence[int] | None = None, *,
               split: Split = "heldout", negatives: bool | Sequence[str] = False) -> list[ExpertRecord]:
        """``n`` distinct questions of ``split``, spread evenly over ``difficulties`` (default: all levels).

        Each level draws from its own stream, so a smaller sample's questions of a level are the first
        ones of a larger sample's (up to prompts shared between levels, which are kept once).
        negatives: ``True`` attaches every category of :mod:`evalcast.tasks.negatives`, a sequence
        attaches the named ones (multiple-choice rows get none: their wrong choices play that part).
        """
        levels = tuple(difficulties or LEVELS)
        if n < 0:
            raise ValueError(f"task '{self.name}': n must be >= 0, got {n}")
        seen: set[str] = set()
        records: list[ExpertRecord] = []
        for i, level in enumerate(levels):
            quota = n // len(levels) + (i < n % len(levels))
            rng, tries, found = random.Random(f"{self.name}:{split}:{seed}:{level}"), 0, 0
            while found < quota:
                record = self.draw(rng, level, split)
                tries += 1
                if record.prompt in seen:
                    if tries > 50 * quota + 1000:
                        raise ValueError(f"task '{self.name}' level {level}: only {found} distinct {split} "
                                         f"questions found for a quota of {quota}; ask for fewer or add levels")
                    continue
                seen.add(record.prompt)
                records.append(record)
                found += 1
        if negatives:
            categories = CATEGORIES if negatives is True else tuple(negatives)
            records = [r if r.is_choice else attach_negatives(r, random.Random(f"neg:{seed}:{r.id}"), categories)
                       for r in records]
        return records

    def negatives(self, record: ExpertRecord, rng: random.Random,
                  categories: Sequence[str] | None = None) -> tuple[Negative, ...]:
        """Minimally flawed versions of ``record``'s solution (see :mod:`evalcast.tasks.negatives`)."""
        return make_negatives(record, rng, categories or CATEGORIES)
