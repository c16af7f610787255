"""Question-level splits: a question's rows (one per anchor checkpoint) always land on the same side.

The same question appears at every anchor, and its label at one checkpoint predicts its label at the
next, so a split by (question, checkpoint) row leaks. The held-out side is a pure
function of ``(seed, question id)``: it does not move as anchors or questions are added, which keeps
the "earlier predicts later" score honest across anchors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def _unit_hash(seed: int, question: str) -> float:
    digest = hashlib.blake2b(f"{seed}\x00{question}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def heldout_mask(ids: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """True for rows whose question is held out (about ``fraction`` of the distinct questions)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1), got {fraction}")
    cache: dict[str, bool] = {}
    return np.array([cache.setdefault(q, _unit_hash(seed, q) < fraction) for q in ids], dtype=bool)


def question_folds(ids: Sequence[str], k: int, seed: int, strata: Sequence[float] | None = None) -> np.ndarray:
    """Fold index in ``0..k-1`` of every row; all rows of a question share one fold.

    Distinct questions are shuffled with ``np.random.default_rng(seed)``, stably sorted by their mean
    ``strata`` value (e.g. pass rate) when given, and dealt round-robin: folds differ in size by at most
    one question, and any two questions adjacent in stratum order (say the only two that were ever
    solved) land in different folds. ``k`` is capped at the number of questions.
    """
    questions = sorted(set(ids))
    if k < 2 or len(questions) < 2:
        raise ValueError(f"need k >= 2 folds and at least 2 questions, got k={k} and {len(questions)} question(s)")
    order = np.random.default_rng(seed).permutation(len(questions))
    if strata is not None:
        sums: dict[str, list[float]] = {}
        for q, value in zip(ids, strata):
            sums.setdefault(q, []).append(float(value))
        key = np.array([np.mean(sums[questions[j]]) for j in order])
        order = order[np.argsort(key, kind="stable")]
    fold_of = {questions[j]: rank % min(k, len(questions)) for rank, j in enumerate(order)}
    return np.array([fold_of[q] for q in ids], dtype=np.int64)
