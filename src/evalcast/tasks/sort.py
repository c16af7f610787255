"""Sorting digits by repeated selection of the minimum: ``sort 5381``.

Each step names the smallest remaining digit: ``min 5381=1`` / ``min 538=3`` / ``min 58=5``, then
``#### 1358``. The first occurrence of the minimum is removed. Level k sorts k+2 digits (repeats allowed).
"""

from __future__ import annotations

import random

from evalcast.tasks.base import TaskFamily, Worked


def _join(items: list[int]) -> str:
    return "".join(map(str, items))


def build(rng: random.Random, level: int) -> Worked:
    items = [rng.randint(0, 9) for _ in range(level + 2)]
    remaining, steps = list(items), []
    while len(remaining) > 1:
        smallest = min(remaining)
        steps.append(f"min {_join(remaining)}={smallest}")
        remaining.remove(smallest)
    return Worked(prompt=f"sort {_join(items)}", steps=tuple(steps), answer=_join(sorted(items)))


SORT = TaskFamily(name="sort", domain="list/sort", build=build,
                  description="sorting digits by repeated selection of the minimum")
