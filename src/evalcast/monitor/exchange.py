"""Collecting rank results and agreeing on one decision, without ever hanging the job.

Only rank 0 fits, logs and writes; every rank must then take the same branch (skip, carry on, stop
training). The exchange goes through the job's key-value store (the ``TCPStore`` behind
``torch.distributed``), not through collectives, because a store wait can time out cleanly where a
timed-out collective leaves the process group unusable:

1. every rank posts its payload (its share of the sums, or the error it hit) under a round key;
2. rank 0 waits for all payloads up to ``timeout_s`` and proposes a decision — "skip" if a payload is
   missing or holds an error;
3. the decision is written with ``compare_set`` (first writer wins). A rank that waited for it longer
   than its timeout writes "skip" the same way. Everyone then reads the one value that won.

The same agreement, before the pass, fixes the plan of the checkpoint (whether an anchor runs), which
only rank 0 can decide from the run history; then every rank prepares (model checks, its batches) and
reports :class:`Ready`, and the pass starts only if every rank is ready with the same number of batches.
Whatever can fail before the first collective of a sharded forward is thus agreed on before it.

A rank that stalls therefore turns into a skip on every rank, and a late payload is simply ignored.
"""

from __future__ import annotations

import datetime
import logging
import pickle
from dataclasses import dataclass
from typing import Any, TypeVar

import torch.distributed as dist

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Decision:
    """What every rank does after an evaluation: carry on, or skip (with the reason); stop training or
    not; and the alerts raised (every rank's hooks receive them, e.g. to re-weight its data sampler)."""

    ok: bool
    reason: str = ""
    stop_training: bool = False
    alerts: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Ready:
    """One rank's answer before the forward pass: ready with its number of batches, or the error it hit."""

    error: str = ""
    batches: int = 0


def readiness_problems(readies: list[Ready | None] | None, timeout_s: float) -> str:
    """Rank 0: why the ranks cannot all start the forward pass ("" when they can): a rank not ready, or
    ranks with different numbers of batches (a sharded forward is a collective: a rank running one batch
    more or less would leave the others waiting)."""
    assert readies is not None
    problems = [r.error if r is not None else f"rank {i}: not ready within {timeout_s:.0f} s"
                for i, r in enumerate(readies) if r is None or r.error]
    counts = sorted({r.batches for r in readies if r is not None and not r.error})
    if not problems and len(counts) > 1:
        problems = [f"the ranks planned different numbers of forward batches {counts}"]
    return "; ".join(problems)


class Exchange:
    """Single-process exchange: payloads pass straight through and rank 0's decision stands."""

    rank, world_size = 0, 1

    def gather(self, round_key: str, payload: Any, timeout_s: float) -> list[Any] | None:
        return [payload]

    def agree(self, round_key: str, proposal: T | None, timeout_s: float, fallback: T) -> T:
        """Rank 0's ``proposal`` on every rank (``fallback`` where rank 0 was not heard from in time)."""
        assert proposal is not None
        return proposal


class StoreExchange(Exchange):
    """Exchange over the default process group's store (every rank of the job takes part)."""

    def __init__(self, namespace: str) -> None:
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        base = dist.distributed_c10d._get_default_store()
        self.store = dist.PrefixStore(f"evalcast/{namespace}/", base)

    def gather(self, round_key: str, payload: Any, timeout_s: float) -> list[Any] | None:
        self.store.set(f"{round_key}/payload/{self.rank}", pickle.dumps(payload))
        if self.rank != 0:
            return None
        keys = [f"{round_key}/payload/{r}" for r in range(self.world_size)]
        try:
            self.store.wait(keys, datetime.timedelta(seconds=timeout_s))
        except dist.DistStoreError:
            missing = [r for r, k in enumerate(keys) if not self.store.check([k])]
            logger.error("evalcast: ranks %s sent nothing within %.0f s", missing, timeout_s)
        out = []
        for key in keys:
            out.append(pickle.loads(self.store.get(key)) if self.store.check([key]) else None)
            if self.store.check([key]):
                self.store.delete_key(key)
        return out

    def agree(self, round_key: str, proposal: T | None, timeout_s: float, fallback: T) -> T:
        key = f"{round_key}/agreed"
        if proposal is None:
            try:
                self.store.wait([key], datetime.timedelta(seconds=timeout_s))
            except dist.DistStoreError:
                logger.error("evalcast: rank %d heard nothing from rank 0 within %.0f s", self.rank, timeout_s)
                self.store.compare_set(key, "", pickle.dumps(fallback))
        else:
            self.store.compare_set(key, "", pickle.dumps(proposal))
        return pickle.loads(self.store.get(key))


def make_exchange(namespace: str) -> Exchange:
    """The store exchange inside an initialised multi-process job, else the single-process one."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return StoreExchange(namespace)
    return Exchange()
