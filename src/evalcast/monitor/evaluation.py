"""What one checkpoint's evaluation produces: the decision every rank shares, and rank 0's results."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalcast.monitor.exchange import Decision
from evalcast.runs.record import Record
from evalcast.trackers.base import Curve, Tracker

logger = logging.getLogger("evalcast")

Table = tuple[Sequence[str], list[list[Any]]]


class EvaluationSkipped(RuntimeError):
    """Raised in strict mode when a checkpoint could not be evaluated."""


class ShardedForwardError(RuntimeError):
    """Raised (strict or not) when the model's own forward raised during an evaluation of a sharded model
    (FSDP2, ZeRO-3): the other ranks wait in a collective this rank will not join, so continuing to train
    would pair its next collectives with theirs. See ``docs/guarantees.md``."""


@dataclass
class Evaluation:
    """What ``Monitor.evaluate`` returns: the shared decision; on rank 0 also the record written (its
    metrics, anchor, probe, forecasts, alerts), the per-example arrays written beside it, and the charts and
    tables sent to the trackers. On other ranks, and for a skipped save, only the decision is meaningful."""

    decision: Decision
    record: Record | None = None
    examples: dict[str, np.ndarray] | None = None
    curves: dict[str, Curve] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.decision.ok

    @property
    def metrics(self) -> dict[str, float]:
        """The checkpoint's metrics (empty on other ranks and for a skipped save)."""
        return self.record.metrics if self.record is not None and self.record.ok else {}


def publish(evaluation: Evaluation, trackers: Tracker, step: int) -> None:
    """An evaluated checkpoint to the trackers: metrics, forecast charts, tables and alerts (alerts are
    also logged)."""
    trackers.log(evaluation.metrics, step=step)
    for name, curve in evaluation.curves.items():
        trackers.log_curve(name, curve, step=step)
    for name, (columns, rows) in evaluation.tables.items():
        trackers.log_table(name, columns, rows, step=step)
    for alert in evaluation.decision.alerts:
        logger.warning("evalcast alert at step %d: %s: %s", step, alert.title, alert.text)
        trackers.alert(alert.title, alert.text, level=alert.level, step=step)
