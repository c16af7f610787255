"""The alert step of a checkpoint (rank 0): every rule sees the history up to it; any may stop training."""

from __future__ import annotations

from collections.abc import Sequence

from evalcast.alerts import AlertRule
from evalcast.monitor.evaluation import Evaluation
from evalcast.monitor.exchange import Decision
from evalcast.runs.history import RunHistory


class AlertStep:
    """Runs the alert rules and turns what they raise into the checkpoint's decision."""

    name = "alerts"

    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.rules = list(rules)

    def run(self, evaluation: Evaluation, history: RunHistory) -> None:
        record = evaluation.record
        assert record is not None
        records = [*history.before(record.step), record]
        raised = tuple(a for rule in self.rules if (a := rule.check(records)) is not None)
        record.alerts = raised
        evaluation.decision = Decision(ok=True, stop_training=any(a.stop_training for a in raised), alerts=raised)
