"""Length-bucketed batches, sharded over ranks with identical shapes on every rank.

Sequences are grouped by their length rounded up to ``pad_multiple`` (a bounded set of shapes), each
bucket is cut into batches of ``max_tokens // length`` rows, and short batches are filled with filler
rows (index −1) so every batch of a bucket has one shape. Each bucket's batches are dealt round-robin
to the ranks and padded with filler batches to a multiple of the world size: every rank then runs the
same number of forward passes with the same shapes in the same order, which FSDP and ZeRO-3 need
(their forward gathers parameters collectively). Filler rows and batches are never counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchPlan:
    """One forward batch: padded length, the sequence index of every row (−1 = filler row) and the
    real sequence whose tokens fill filler rows (never scored; it keeps attention well defined)."""

    length: int
    rows: np.ndarray
    filler: int

    @property
    def is_filler(self) -> bool:
        return bool((self.rows < 0).all())


def plan_batches(lengths: np.ndarray, *, max_tokens: int, pad_multiple: int = 64, max_batch_size: int = 256,
                 world_size: int = 1, rank: int = 0) -> list[BatchPlan]:
    """This rank's batches over sequences of the given lengths."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    padded = ((lengths + pad_multiple - 1) // pad_multiple) * pad_multiple
    mine: list[BatchPlan] = []
    for length in np.unique(padded):
        members = np.flatnonzero(padded == length)
        members = members[np.argsort(lengths[members], kind="stable")]
        size = int(max(1, min(max_batch_size, max_tokens // int(length), len(members))))
        n_batches = -(-len(members) // size)
        n_dealt = -(-n_batches // world_size) * world_size
        rows = np.full(n_dealt * size, -1, dtype=np.int64)
        rows[:len(members)] = members
        batches = rows.reshape(n_dealt, size)
        mine.extend(BatchPlan(int(length), batches[b], int(members[0])) for b in range(rank, n_dealt, world_size))
    return mine
