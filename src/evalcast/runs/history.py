"""Reading a run's records: the evaluated ones, their x axis, a metric's series; and rank 0's cached view.

Every consumer of a history (forecasts, alert rules, the report, the monitor's schedule) reads it
through these few functions and :meth:`Record.value <evalcast.runs.record.Record.value>`, so "which
records count", "which x axis" and "what is a missing value" have one answer: skipped checkpoints
have no metrics and are left out of series; the x axis is tokens seen when every record has them,
else steps; a metric not measured at a checkpoint reads NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from evalcast.runs.record import Record
from evalcast.runs.store import EXAMPLES, PREDICTIONS, RunStore

TOKENS, STEPS = "tokens seen", "step"


def ok_records(records: Sequence[Record]) -> list[Record]:
    """The evaluated records (skipped checkpoints left out), in order."""
    return [r for r in records if r.ok]


def run_axis(records: Sequence[Record]) -> tuple[list[float], str]:
    """The x values of ``records``: tokens seen when every record has them, else steps; and the axis name."""
    if records and all(r.tokens_seen for r in records):
        return [float(r.tokens_seen or 0) for r in records], TOKENS
    return [float(r.step) for r in records], STEPS


def series(records: Sequence[Record], group: str, metric: str) -> np.ndarray:
    """``evalcast/<group>/<metric>`` at every record (NaN where not measured)."""
    return np.array([r.value(group, metric) for r in records], dtype=float)


class RunHistory:
    """Rank 0's view of the run directory: its records and the probe's per-question predictions.

    Loaded from the run store on first use and again after :meth:`invalidate` (a rewind, or a checkpoint
    whose decision was lost after a component had already used it); the run directory stays the source
    of truth, this object only saves re-reading it at every checkpoint. ``on_load`` callables run after
    every (re)load, e.g. to rebuild the probe from the anchors the history now holds.
    """

    def __init__(self, store: RunStore, on_load: Sequence[Callable[[RunHistory], None]] = ()) -> None:
        self.store = store
        self.on_load = list(on_load)
        self._records: list[Record] | None = None
        self._predictions: dict[int, dict[str, float]] = {}

    @property
    def loaded(self) -> bool:
        return self._records is not None

    def records(self) -> list[Record]:
        """Every record by step, skipped ones included."""
        if self._records is None:
            self._records = self.store.history()
            self._predictions = {}
            for record in ok_records(self._records):
                arrays = self.store.load_arrays(record.step, PREDICTIONS)
                if arrays is not None:
                    self._predictions[record.step] = dict(zip(arrays["ids"].tolist(), arrays["p"].tolist()))
            for hook in self.on_load:
                hook(self)
        return self._records

    def before(self, step: int) -> list[Record]:
        """The records of checkpoints earlier than ``step``."""
        return [r for r in self.records() if r.step < step]

    def predictions(self) -> Mapping[int, Mapping[str, float]]:
        """Per checkpoint step: the probe's P(solve) of every anchor question."""
        self.records()
        return self._predictions

    def add_predictions(self, step: int, p_solve: Mapping[str, float]) -> None:
        """The probe's predictions at the checkpoint being evaluated (the probe saved them to the store)."""
        self.records()
        self._predictions[step] = dict(p_solve)

    def append(self, record: Record, examples: Mapping[str, np.ndarray] | None = None) -> None:
        """Write ``record`` (and its per-example arrays, when given); kept in view if the history is loaded."""
        if examples is not None:
            self.store.save_arrays(record.step, EXAMPLES, dict(examples))
        self.store.append(record)
        if self._records is not None:
            self._records[:] = sorted([r for r in self._records if r.step != record.step] + [record],
                                      key=lambda r: r.step)

    def rewind(self, step: int) -> None:
        """Training resumed from the checkpoint at ``step``: records beyond it belong to a lost future."""
        if any(r.step > step for r in self.store.history()):
            self.store.rewind(step)
        self.invalidate()

    def invalidate(self) -> None:
        """Read the run directory again at the next use."""
        self._records = None
