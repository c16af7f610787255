"""The registry of synthetic task families and the expert-set file emitter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evalcast.data.files import write_jsonl
from evalcast.tasks.add import ADD
from evalcast.tasks.base import TaskFamily
from evalcast.tasks.chain import CHAIN
from evalcast.tasks.choice import MC_ADD
from evalcast.tasks.sort import SORT

TASKS: dict[str, TaskFamily] = {family.name: family for family in (ADD, SORT, CHAIN)}
#: Multiple-choice families (rows with ``choices`` and ``gold``; no worked solution, no negatives).
CHOICE_TASKS: dict[str, TaskFamily] = {MC_ADD.name: MC_ADD}


def get_task(name: str) -> TaskFamily:
    """The family called ``name``; raises ``KeyError`` naming the known ones."""
    try:
        return {**TASKS, **CHOICE_TASKS}[name]
    except KeyError:
        raise KeyError(f"unknown task '{name}'; known tasks: {', '.join(sorted({**TASKS, **CHOICE_TASKS}))}") from None


def write_task_suite(out_dir: str | Path, tasks: Sequence[str] | None = None, n_per_task: int = 200,
                     seed: int = 0, negatives: bool | Sequence[str] = True,
                     difficulties: Sequence[int] | None = None) -> dict[str, Path]:
    """Write ``<out_dir>/<task>.jsonl`` held-out expert sets (evenly spread over difficulties).

    Returns ``{task: path}``. The files load back with :func:`evalcast.data.files.load_records`.
    """
    families = [get_task(name) for name in (tasks or TASKS)]
    return {family.name: write_jsonl(family.sample(n_per_task, seed, difficulties, negatives=negatives),
                                     Path(out_dir) / f"{family.name}.jsonl")
            for family in families}
