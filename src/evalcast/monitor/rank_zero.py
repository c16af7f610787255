"""Rank 0's share of a checkpoint: merge the ranks' payloads, run the steps, write and publish.

Every other rank only prepares, runs its forward share and follows the decision (``monitor.py``); what
depends on the run history — probe, forecasts, alerts, the record and the trackers — happens here, once.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import torch

from evalcast.data.expert_set import ExpertSet
from evalcast.data.table import EXPERT
from evalcast.errors import ErrorPolicy
from evalcast.monitor.alert_step import AlertStep
from evalcast.monitor.config import Budget, MonitorConfig, TrainingContext
from evalcast.monitor.evaluation import Evaluation, publish
from evalcast.monitor.exchange import Decision
from evalcast.monitor.forecast_step import ForecastStep
from evalcast.monitor.local import LocalResult
from evalcast.monitor.merging import checkpoint_metrics, cost_metrics, example_arrays, merge
from evalcast.monitor.probe_step import ProbeStep
from evalcast.monitor.saved import forecast_meta
from evalcast.proxy.aggregate import GroupIndex, metric_name
from evalcast.runs import Record, RunHistory
from evalcast.runs.preview import TABLE, record_preview
from evalcast.trackers.base import CompositeTracker

logger = logging.getLogger("evalcast")


class RankZero:
    """Concludes and commits checkpoints on rank 0, under the monitor's error policy (never raising into
    training unless strict). ``history`` is the run directory's, bound by the monitor."""

    def __init__(self, experts: ExpertSet, groups: GroupIndex, config: MonitorConfig, policy: ErrorPolicy,
                 session: str, trackers: CompositeTracker, probe: ProbeStep | None, forecast: ForecastStep | None,
                 alerts: AlertStep | None) -> None:
        self.experts, self.groups, self.config, self.policy, self.session = experts, groups, config, policy, session
        self.trackers, self.probe, self.forecast, self.alerts = trackers, probe, forecast, alerts
        self.history: RunHistory | None = None

    def records(self) -> list[Record]:
        """The run's records (the probe is restored whenever they are (re)loaded)."""
        assert self.history is not None
        return self.history.records()

    def conclude(self, payloads: list[LocalResult | None], ctx: TrainingContext, anchor: bool, started: float,
                 budget: Budget, n_params: int | None) -> Evaluation:
        """Merge the shards and compute everything; a failure of the core becomes a skip."""
        problems = [p.error if p is not None else f"rank {r}: no result within {self.config.timeout_s:.0f} s"
                    for r, p in enumerate(payloads) if p is None or p.error]
        if problems:
            return Evaluation(Decision(ok=False, reason="; ".join(str(p) for p in problems)))
        done = [p for p in payloads if p is not None]
        with self.policy.guard(f"aggregating step {ctx.step} (this save is skipped)", reraise=False) as failure:
            merged = merge(done, self.experts.table.n_seq)
            names = self.config.stats.names
            metrics = checkpoint_metrics(self.experts, self.groups, names, merged)
            evaluation = Evaluation(Decision(ok=True), record=self._record(ctx, metrics),
                                    examples=example_arrays(self.experts, names, merged))
        if failure:
            return Evaluation(Decision(ok=False, reason=f"rank 0: {failure.message}"))
        history = self.history
        assert history is not None
        if self.probe is not None:
            probe = self.probe
            self._run_step(probe.name, evaluation, lambda: probe.run(evaluation, done, anchor, history,
                                                                     self.config.save_features))
        questions = [q for p in done for q in p.anchor_questions]
        if anchor and questions and history.store.read_preview() is None:
            self._run_step("preview", evaluation, lambda: evaluation.tables.update(
                {TABLE: record_preview(self.experts, questions, ctx.step, history.store)}))
        if self.forecast is not None and self.forecast.due(history):
            forecast = self.forecast
            self._run_step(forecast.name, evaluation, lambda: forecast.run(evaluation, history, budget, n_params))
        if self.alerts is not None:
            alerts = self.alerts
            self._run_step(alerts.name, evaluation, lambda: alerts.run(evaluation, history))
        evaluation.metrics.update(cost_metrics(done, merged.tokens, started))
        return evaluation

    def _run_step(self, name: str, evaluation: Evaluation, run: Callable[[], None]) -> None:
        """Run one step; its failure is recorded and logged, the proxies still count."""
        assert evaluation.record is not None
        started = time.perf_counter()
        with self.policy.guard(f"{name} at step {evaluation.record.step}") as failure:
            run()
        if failure:
            evaluation.record.errors[name] = failure.message
        evaluation.metrics[metric_name("cost", f"{name}_seconds")] = time.perf_counter() - started

    def _record(self, ctx: TrainingContext, metrics: dict[str, float]) -> Record:
        return Record(step=ctx.step, tokens_seen=ctx.tokens_seen, epoch=ctx.epoch, time=time.time(),
                      session=self.session, train=dict(ctx.train), metrics=metrics)

    def commit(self, evaluation: Evaluation, ctx: TrainingContext, budget: Budget, n_params: int | None) -> None:
        """Write the record (or the skip) and publish it; a failure here is logged, never raised."""
        assert self.history is not None
        history = self.history
        with self.policy.guard(f"writing step {ctx.step}"):
            meta, fields = history.store.read_meta(), self._forecast_meta(budget, n_params)
            if meta is None or any(meta.get(k) != v for k, v in fields.items()):  # e.g. the budget became known
                history.store.write_meta({**(meta or self._meta()), **fields})
            self.records()
            if not evaluation.ok:
                evaluation.record = Record(step=ctx.step, status="skipped", tokens_seen=ctx.tokens_seen,
                                           time=time.time(), session=self.session, reason=evaluation.decision.reason)
                evaluation.examples = None
                if self.probe is not None:  # an anchor added to the probe before the decision was lost
                    history.invalidate()
                logger.warning("evalcast: step %d skipped: %s", ctx.step, evaluation.decision.reason)
            assert evaluation.record is not None
            history.append(evaluation.record, evaluation.examples if self.config.save_examples else None)
            if evaluation.ok:
                publish(evaluation, self.trackers, ctx.step)

    def _meta(self) -> dict[str, Any]:
        table = self.experts.table
        return {"expert_set": self.experts.fingerprint, "tokenizer": self.experts.tokenizer_fingerprint,
                "rows": len(self.experts), "tasks": self.experts.tasks, "groups": self.groups.groups,
                "tokens_scored": int(table.scored_lengths[table.kind == EXPERT].sum()),
                "weightings": self.experts.weighting_names, "stats": list(self.config.stats.names),
                "anchor_questions": None if self.probe is None else self.probe.live.ids,
                "evaluation_questions": self.experts.n_evaluation,
                "host": socket.gethostname(), "created": time.time(), "torch": torch.__version__}

    def _forecast_meta(self, budget: Budget, n_params: int | None) -> dict[str, Any]:
        forecast = self.forecast
        return forecast_meta(budget, n_params, forecast.groups_of if forecast else {},
                             forecast.groups if forecast else [], forecast.config if forecast else None)
