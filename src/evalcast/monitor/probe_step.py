"""The probe step of a checkpoint (rank 0): the ranks' features and anchor results → the live probe.

The ranks' pooled features of the anchor questions are merged (with each question's own statistics
from this checkpoint's per-example arrays); at an anchor, the ranks' generated-and-scored questions
become the labels; the probe learns from them and predicts P(solve). The record gets the anchor's
summary and the probe's status, the metrics ``pass@1_anchor``, ``pass@1_probe`` and the probe's
quality, and the run history the per-question predictions (the forecasts read them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalcast.data.expert_set import ExpertSet
from evalcast.monitor.evaluation import Evaluation
from evalcast.monitor.local import LocalResult
from evalcast.monitor.merging import merge_features
from evalcast.probe.config import ProbeConfig
from evalcast.probe.live import LiveProbe, anchor_metrics
from evalcast.proxy.aggregate import metric_name
from evalcast.runs.history import RunHistory
from evalcast.runs.record import AnchorSummary, ProbeStatus


class ProbeStep:
    """The anchor questions (table rows, fixed for the run) and the probe trained on their labels."""

    name = "probe"

    def __init__(self, experts: ExpertSet, rows: np.ndarray, config: ProbeConfig) -> None:
        self.rows = rows
        self.live = LiveProbe([experts.records[experts.table.record_index[i]] for i in rows], config)

    @property
    def config(self) -> ProbeConfig:
        return self.live.config

    def restore(self, history: RunHistory) -> None:
        """Rebuild the probe from the run directory's anchors (after a restart or a rewind)."""
        self.live.restore(history.store, [r.step for r in history.records() if r.anchor is not None])

    def run(self, evaluation: Evaluation, payloads: Sequence[LocalResult], anchor_ran: bool, history: RunHistory,
            keep_features: bool) -> None:
        record = evaluation.record
        assert record is not None and evaluation.examples is not None
        features = merge_features(payloads, self.live.ids, evaluation.examples)
        anchor_errors = [p.anchor_error for p in payloads if p.anchor_error]
        if anchor_errors:
            record.errors["anchor"] = "; ".join(anchor_errors)
        questions = [q for p in payloads for q in p.anchor_questions] if anchor_ran and not anchor_errors else []
        labels = {q["id"]: (int(q["n"]), int(q["correct_count"])) for q in questions}
        metrics = anchor_metrics({q["id"]: q["pass_at_1"] for q in questions}, self.live.groups) if labels else {}
        observed = self.live.observe(record.step, features, labels or None, history.store, keep_features)
        metrics.update(observed.metrics)
        if labels and observed.report is not None:
            record.anchor = AnchorSummary(questions=len(labels), report=observed.report.to_dict(),
                                          per_question={q: c / n for q, (n, c) in labels.items()},
                                          seconds=max(p.anchor_seconds for p in payloads),
                                          tokens_generated=sum(p.anchor_tokens for p in payloads))
            metrics[metric_name("cost", "anchor_seconds")] = record.anchor.seconds
        evaluation.metrics.update(metrics)
        record.probe = ProbeStatus("ok" if observed.p_solve else "none", observed.reason, observed.message)
        if observed.p_solve:
            history.add_predictions(record.step, observed.p_solve)
