"""``mc_add``: addition as a K=4 multiple-choice question, with distractors a weak model finds plausible.

The prompt is ``47+85=``; the choices are the sum and three wrong numbers: the sum with every carry
dropped (digit-wise sums mod 10), and the sum off by one in its last or tens digit. The correct choice
sits at a random position. Scored as the continuation ``" " + choice`` (lm-eval's target delimiter).
"""

from __future__ import annotations

import random

from evalcast.tasks.add import _number
from evalcast.tasks.base import TaskFamily, Worked

#: level -> digits of the two operands.
SHAPES = {1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (3, 2), 5: (3, 3)}
K = 4


def _no_carry(a: int, b: int) -> int:
    width = max(len(str(a)), len(str(b)))
    xs, ys = str(a).zfill(width), str(b).zfill(width)
    return int("".join(str((int(x) + int(y)) % 10) for x, y in zip(xs, ys)))


def build(rng: random.Random, level: int) -> Worked:
    a, b = (_number(rng, digits) for digits in SHAPES[level])
    total = a + b
    candidates = [_no_carry(a, b), total + 1, total - 1, total + 10, total - 10, total + 2]
    wrong: list[int] = []
    for value in candidates:
        if value != total and value >= 0 and value not in wrong:
            wrong.append(value)
    wrong = wrong[:1] + rng.sample(wrong[1:], K - 2) if wrong[0] == _no_carry(a, b) else rng.sample(wrong, K - 1)
    gold = rng.randrange(K)
    choices = [str(v) for v in wrong]
    choices.insert(gold, str(total))
    return Worked(prompt=f"{a}+{b}=", steps=(), answer=str(total), choices=tuple(choices), gold=gold)


MC_ADD = TaskFamily(name="mc_add", domain="arith/mc_add", build=build,
                    description="two-operand addition, 4-way multiple choice (carry-dropped, off-by-one distractors)")
