"""Minimally flawed solutions for discriminative pairs (``docs/methods.md`` §4).

Each negative edits one line of a solution that ends in ``#### <answer>`` and keeps its length within a
few characters, so a likelihood margin measures the flaw rather than length or style:

- ``wrong_answer``: one digit of the final answer is off by 1 or 2; every step is intact.
- ``corrupted_step``: the result of one step line (``...=<n>``) is off by 1 or 2 in its last digit;
  the other lines, the final answer included, are unchanged.
- ``broken_format``: the ``####`` marker is garbled or missing; the answer itself is unchanged.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace

from evalcast.data.records import ExpertRecord, Negative

CATEGORIES = ("wrong_answer", "corrupted_step", "broken_format")
_FINAL = re.compile(r"^####\s*(.+?)\s*$")
_STEP_RESULT = re.compile(r"=(\d+)$")
_BROKEN_MARKERS = ("###", "# ###", "answer:", "")


def off_by_small(number: str, rng: random.Random) -> str:
    """``number`` (digits) with its last digit moved by 1 or 2, staying a digit: same length, new value."""
    last = int(number[-1])
    shift = rng.choice((1, 2)) * rng.choice((-1, 1))
    if not 0 <= last + shift <= 9:
        shift = -shift
    return number[:-1] + str(last + shift)


def _split_final(solution: str, where: str) -> tuple[list[str], str]:
    lines = solution.split("\n")
    match = _FINAL.match(lines[-1])
    if match is None:
        raise ValueError(f"{where}: the solution's last line must be '#### <answer>', got {lines[-1]!r}; "
                         "negatives are built from GSM8K-style solutions only")
    return lines[:-1], match.group(1)


def wrong_answer(solution: str, rng: random.Random, where: str = "solution") -> str:
    """The solution with one number of its final answer changed (the last digit moved by 1 or 2)."""
    steps, answer = _split_final(solution, where)
    numbers = list(re.finditer(r"\d+", answer))
    if not numbers:
        raise ValueError(f"{where}: final answer {answer!r} holds no digits to change")
    m = rng.choice(numbers)
    changed = answer[:m.start()] + off_by_small(m.group(), rng) + answer[m.end():]
    return "\n".join((*steps, f"#### {changed}"))


def corrupted_step(solution: str, rng: random.Random, where: str = "solution") -> str | None:
    """The solution with one step result (``...=<n>``) wrong, or ``None`` when no line ends in ``=<n>``."""
    steps, answer = _split_final(solution, where)
    candidates = [(i, m) for i, line in enumerate(steps) if (m := _STEP_RESULT.search(line))]
    if not candidates:
        return None
    i, m = rng.choice(candidates)
    steps[i] = steps[i][:m.start(1)] + off_by_small(m.group(1), rng)
    return "\n".join((*steps, f"#### {answer}"))


def broken_format(solution: str, rng: random.Random, where: str = "solution") -> str:
    """The solution with its ``####`` marker garbled or dropped (the answer text is kept)."""
    steps, answer = _split_final(solution, where)
    marker = rng.choice(_BROKEN_MARKERS)
    return "\n".join((*steps, f"{marker} {answer}".lstrip()))


_MAKERS = {"wrong_answer": wrong_answer, "corrupted_step": corrupted_step, "broken_format": broken_format}


def make_negatives(record: ExpertRecord, rng: random.Random,
                   categories: Sequence[str] = CATEGORIES) -> tuple[Negative, ...]:
    """One negative per category; a category that does not apply (no ``=<n>`` step) is left out."""
    unknown = [c for c in categories if c not in _MAKERS]
    if unknown:
        raise ValueError(f"unknown negative categories {unknown}; choose from {list(CATEGORIES)}")
    out = []
    for category in categories:
        text = _MAKERS[category](record.solution, rng, f"record {record.id!r}")
        if text is not None:
            out.append(Negative(text=text, category=category))
    return tuple(out)


def attach_negatives(record: ExpertRecord, rng: random.Random,
                     categories: Sequence[str] = CATEGORIES) -> ExpertRecord:
    """``record`` with :func:`make_negatives` as its ``negatives``."""
    return replace(record, negatives=make_negatives(record, rng, categories))
