"""Variable-binding chains resolved step by step: ``a=3 b=a+4 c=b-2 c?``.

The solution substitutes along the dependency path of the queried variable only:
``a=3`` / ``b=3+4=7`` / ``c=7-2=5`` / ``#### 5``. Harder levels have longer chains, distractor
variables that the query does not need, and definitions in shuffled order. Values stay in 0..9.
"""

from __future__ import annotations

import random
import string
from itertools import pairwise

from evalcast.tasks.base import TaskFamily, Worked

#: level -> (chain length, distractors, shuffled order)
SHAPES = {1: (2, 0, False), 2: (3, 0, False), 3: (3, 1, True), 4: (4, 1, True), 5: (4, 2, True)}
MAX_VALUE = 9


def _offset(rng: random.Random, value: int) -> tuple[str, int]:
    """An operation ``+k``/``-k`` (k in 1..9) that keeps ``value`` within 0..MAX_VALUE."""
    options = [("+", k) for k in range(1, 10) if value + k <= MAX_VALUE]
    options += [("-", k) for k in range(1, 10) if value - k >= 0]
    op, k = rng.choice(options)
    return op, (value + k if op == "+" else value - k)


def build(rng: random.Random, level: int) -> Worked:
    length, n_distractors, shuffled = SHAPES[level]
    names = rng.sample(string.ascii_lowercase, length + n_distractors)
    chain, extra = names[:length], names[length:]
    value = rng.randint(1, 9)
    definitions = [f"{chain[0]}={value}"]
    steps = [f"{chain[0]}={value}"]
    for prev, name in pairwise(chain):
        op, new = _offset(rng, value)
        k = abs(new - value)
        definitions.append(f"{name}={prev}{op}{k}")
        steps.append(f"{name}={value}{op}{k}={new}")
        value = new
    for name in extra:  # depends on a chain variable, but the query never needs it
        definitions.append(f"{name}={rng.choice(chain[:-1])}{rng.choice('+-')}{rng.randint(1, 9)}")
    if shuffled:
        rng.shuffle(definitions)
    return Worked(prompt=f"{' '.join(definitions)} {chain[-1]}?", steps=tuple(steps), answer=str(value))


CHAIN = TaskFamily(name="chain", domain="logic/chain", build=build,
                   description="variable-binding chains with distractors, resolved by substitution")
