"""The framework-agnostic core: what happens at one checkpoint, on every rank.

``Monitor.evaluate`` is all a framework adapter calls::

    rank 0        plan              from the run history: does an anchor run at this checkpoint?
    every rank    exchange.agree    one plan for all ranks
    every rank    isolated(model):  forward pass over this rank's shard → per-sequence sums, probe
                                    features; anchor generation on this rank's share of questions
                                    (an exception here is caught: the payload becomes the error)
    every rank    exchange.gather   payloads → rank 0 (a missing payload after timeout_s = failure)
    rank 0        conclude          proxies, pairs, anchors, probe, forecasts, alerts → a Decision
    every rank    exchange.agree    one Decision for all ranks (skip, stop training, alerts)
    rank 0        commit            run store record + arrays, trackers

Nothing raises into the training loop unless ``strict=True``; every rank returns the same decision.
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evalcast.alerts import Alert, AlertRule
from evalcast.data.expert_set import ExpertSet
from evalcast.data.table import EXPERT
from evalcast.forecast import forecast_run
from evalcast.monitor.anchors import AnchorConfig, anchor_due, probe_questions
from evalcast.monitor.config import Budget, MonitorConfig, TrainingContext
from evalcast.monitor.exchange import Decision, Exchange, make_exchange
from evalcast.monitor.forecasting import (
    FORECAST_COLUMNS,
    ForecastSettings,
    build_inputs,
    forecast_curve,
    forecast_metrics,
    forecast_rows,
    refused_everywhere,
)
from evalcast.monitor.isolation import isolated
from evalcast.monitor.local import LocalPlan, LocalResult, run_local
from evalcast.monitor.merging import checkpoint_metrics, cost_metrics, example_arrays, merge
from evalcast.monitor.probing import PREDICTIONS, ProbeQuestions
from evalcast.monitor.run_store import RunStore
from evalcast.probe import ProbeConfig
from evalcast.proxy.aggregate import GroupIndex, metric_name
from evalcast.report.plots import run_axis
from evalcast.stats.head import check_compatible, unwrap
from evalcast.trackers.base import Curve, Tracker

logger = logging.getLogger("evalcast")


class EvaluationSkipped(RuntimeError):
    """Raised in strict mode when a checkpoint could not be evaluated."""


@dataclass
class Evaluation:
    """What ``evaluate`` returns: the shared decision, and on rank 0 the metrics and the stored record."""

    decision: Decision
    metrics: dict[str, float] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Curve] = field(default_factory=dict)
    tables: dict[str, tuple[Sequence[str], list[list[Any]]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.decision.ok


@dataclass(frozen=True)
class _Plan:
    skip: str = ""
    anchor: bool = False


class Monitor:
    """Evaluates a live model on an expert set at checkpoints and keeps the run's history.

    run_dir: the local run directory (history, arrays, state); reopening it continues the run.
    trackers: where metrics go besides the run directory (W&B, TensorBoard, MLflow ...).
    budget: the training budget (forecast horizon); framework adapters fill in what the trainer knows.
    anchors: sparse real evaluations (generation + scoring) on the probe questions; they label the probe
        and anchor the accuracy forecasts. Without anchors there is no pass@1, only proxies.
    probe: the representation probe's settings (on whenever anchors are).
    forecast: forecast settings, ``None`` to turn forecasts off.
    alerts: rules evaluated at every checkpoint (early stop, regression, data mix); off unless given.
    on_alert: callables that receive every alert raised, on every rank (e.g. to re-weight a sampler).
    name: distinguishes several monitors in one job (store keys, checkpoint state).
    """

    def __init__(self, experts: ExpertSet, *, run_dir: str | Path | None = None,
                 config: MonitorConfig = MonitorConfig(), trackers: Sequence[Tracker] = (),
                 budget: Budget = Budget(), anchors: AnchorConfig | None = None, probe: ProbeConfig | None = None,
                 forecast: ForecastSettings | None = ForecastSettings(), alerts: Sequence[AlertRule] = (),
                 on_alert: Sequence[Callable[[Alert], None]] = (), name: str = "evalcast") -> None:
        self.experts, self.config, self.name, self.budget = experts, config, name, budget
        self.anchors, self.forecast = anchors, forecast
        self.alert_rules, self.alert_hooks = list(alerts), list(on_alert)
        self.groups = GroupIndex.build(experts)
        self.trackers: list[Tracker] = list(trackers)
        self.framework_trackers: list[Tracker] = []
        self.listeners: list[Callable[[Evaluation, TrainingContext], None]] = []
        self.session = uuid.uuid4().hex[:12]
        self.store: RunStore | None = None
        self.last: Evaluation | None = None
        self.probe: ProbeQuestions | None = None
        if anchors is not None or probe is not None:
            rows = probe_questions(experts, anchors.questions if anchors else 256)
            self.probe = ProbeQuestions(experts, rows, probe or ProbeConfig())
        self._exchange: Exchange | None = None
        self._round = 0
        self._decided: dict[int, Evaluation] = {}
        self._records: list[dict[str, Any]] | None = None
        self._predictions: dict[int, dict[str, float]] = {}
        if run_dir is not None:
            self.bind_run_dir(run_dir)

    # ---------------------------------------------------------------- setup
    def bind_run_dir(self, run_dir: str | Path) -> RunStore:
        """Open (or create) the run directory; refuses one that holds a run on another expert set."""
        store = RunStore(run_dir)
        meta = store.read_meta()
        if meta is not None and meta.get("expert_set") != self.experts.fingerprint:
            raise ValueError(
                f"{store.path} holds an evalcast run on another expert set (fingerprint "
                f"{str(meta.get('expert_set'))[:12]} vs {self.experts.fingerprint[:12]}); its metrics would not "
                "be comparable. Use a new run_dir.")
        self.store, self._records = store, None
        return store

    def use_framework_trackers(self, trackers: Sequence[Tracker]) -> None:
        """Trackers found in the trainer (its W&B run, TensorBoard writer ...), replacing earlier ones."""
        self.framework_trackers = list(trackers)

    def tracker_call(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call ``method`` on every tracker; one tracker's failure is logged and does not stop the others."""
        for tracker in [*self.trackers, *self.framework_trackers]:
            try:
                getattr(tracker, method)(*args, **kwargs)
            except Exception:
                logger.error("evalcast: tracker %r failed in %s.\n%s", tracker, method, traceback.format_exc())
                if self.config.strict:
                    raise

    def set_budget(self, budget: Budget) -> None:
        """Set the horizon (adapters read it from the trainer; a token budget given by the user is kept)."""
        self.budget = budget

    @property
    def run_dir(self) -> Path | None:
        return None if self.store is None else self.store.path

    @property
    def exchange(self) -> Exchange:
        if self._exchange is None:
            self._exchange = make_exchange(self.name)
        return self._exchange

    @property
    def is_main(self) -> bool:
        return self.exchange.rank == 0

    def history(self) -> list[dict[str, Any]]:
        """The run's records (one per evaluated checkpoint, by step)."""
        return [] if self.store is None else self.store.history()

    def rewind(self, step: int) -> None:
        """Training resumed from the checkpoint at ``step``: later records belong to a lost future."""
        self._decided = {s: e for s, e in self._decided.items() if s <= step}
        if self.store is None or not self.is_main:
            return
        if any(r["step"] > step for r in self.store.history()):
            self.store.rewind(step)
        self._records = None

    def state_dict(self) -> dict[str, Any]:
        """What a trainer checkpoint keeps of the monitor (the run directory holds the rest)."""
        return {"name": self.name, "last_step": max(self._decided, default=None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Checks that a trainer checkpoint belongs to this monitor (the run directory is the source of truth)."""
        if state.get("name", self.name) != self.name:
            raise ValueError(f"checkpoint state of evalcast monitor {state['name']!r} given to {self.name!r}")

    # ---------------------------------------------------------------- the checkpoint
    def step(self, model: nn.Module, *, step: int, every: int = 1, **context: Any) -> Evaluation | None:
        """Plain-loop API: evaluate when ``step`` is a multiple of ``every``, else do nothing."""
        if step % every:
            return None
        return self.evaluate(model, TrainingContext(step=step, **context))

    def evaluate(self, model: nn.Module, context: TrainingContext | int, **kwargs: Any) -> Evaluation:
        """Evaluate ``model`` at this checkpoint on every rank; all ranks get the same decision."""
        ctx = context if isinstance(context, TrainingContext) else TrainingContext(step=int(context), **kwargs)
        if ctx.step in self._decided:  # e.g. Lightning's save_last saving twice at one step
            return self._decided[ctx.step]
        if self.store is None:
            self.bind_run_dir("evalcast_run")
        self._round += 1
        started = time.perf_counter()
        timeout = self.config.timeout_s
        plan = self.exchange.agree(f"{self._round}/plan", self._plan(ctx) if self.is_main else None, timeout,
                                   _Plan(skip="rank 0 planned nothing in time"))
        local, error = (LocalResult(rank=self.exchange.rank, error=plan.skip), None) if plan.skip else \
            self._local(unwrap(model), ctx, plan)
        payloads = self.exchange.gather(f"{self._round}/payload", local, timeout)
        evaluation = self._conclude(payloads, ctx, plan, started) if payloads is not None else None
        skip = Decision(ok=False, reason="rank 0 decided nothing in time")
        decision = self.exchange.agree(f"{self._round}/decision", evaluation.decision if evaluation else None,
                                       2 * timeout, skip)
        if evaluation is None or decision != evaluation.decision:
            evaluation = Evaluation(decision)
        if self.is_main:
            self._commit(evaluation, ctx)
        for alert in decision.alerts:
            for hook in self.alert_hooks:
                self._call_hook(hook, alert)
        self._decided[ctx.step] = self.last = evaluation
        if self.config.strict and not decision.ok:
            if error is not None:
                raise error
            raise EvaluationSkipped(decision.reason)
        return evaluation

    def _call_hook(self, hook: Callable[[Alert], None], alert: Alert) -> None:
        try:
            hook(alert)
        except Exception:
            logger.error("evalcast: alert hook %r failed.\n%s", hook, traceback.format_exc())
            if self.config.strict:
                raise

    def _plan(self, ctx: TrainingContext) -> _Plan:
        try:
            records = self._history_cache()
            return _Plan(anchor=self.anchors is not None and anchor_due(self.anchors, ctx.step, records))
        except Exception as exc:
            logger.error("evalcast: planning step %d failed.\n%s", ctx.step, traceback.format_exc())
            return _Plan(skip=f"rank 0: {type(exc).__name__}: {exc}")

    def _local(self, model: nn.Module, ctx: TrainingContext, plan: _Plan) -> tuple[LocalResult, BaseException | None]:
        rank, world = self.exchange.rank, self.exchange.world_size
        try:
            head = check_compatible(model, vocab_size=self.experts.vocab_size,
                                    longest=int(self.experts.table.lengths.max()))
            local_plan = LocalPlan(probe_rows=None if self.probe is None else self.probe.rows,
                                   capture_tokens=self.probe is not None and self.probe.config.model == "attention",
                                   anchor=self.anchors if plan.anchor else None)
            with isolated(model):
                return run_local(model, self.experts, head, self.config, local_plan, ctx, rank, world), None
        except Exception as exc:
            logger.error("evalcast: evaluation at step %d failed on rank %d; this save is skipped.\n%s",
                         ctx.step, rank, traceback.format_exc())
            return LocalResult(rank=rank, error=f"rank {rank}: {type(exc).__name__}: {exc}"), exc

    # ---------------------------------------------------------------- rank 0
    def _conclude(self, payloads: list[LocalResult | None], ctx: TrainingContext, plan: _Plan,
                  started: float) -> Evaluation:
        """Rank 0: merge the shards and compute everything; a failure of the core becomes a skip."""
        problems = [p.error if p is not None else f"rank {r}: no result within {self.config.timeout_s:.0f} s"
                    for r, p in enumerate(payloads) if p is None or p.error]
        if problems:
            return Evaluation(Decision(ok=False, reason="; ".join(str(p) for p in problems)))
        done = [p for p in payloads if p is not None]
        try:
            merged = merge(done, self.experts.table.n_seq)
            names = self.config.stats.names
            metrics = checkpoint_metrics(self.experts, self.groups, names, merged)
            evaluation = Evaluation(Decision(ok=True), metrics=metrics, record=self._record(ctx, metrics))
            evaluation.record["_arrays"] = example_arrays(self.experts, names, merged)
        except Exception as exc:
            logger.error("evalcast: aggregating step %d failed; this save is skipped.\n%s", ctx.step,
                         traceback.format_exc())
            return Evaluation(Decision(ok=False, reason=f"rank 0: {type(exc).__name__}: {exc}"))
        if self.probe is not None:
            self._component("probe", evaluation, lambda: self._probe(evaluation, done, ctx, plan))
        if self.forecast is not None and len(self._history_cache()) % self.forecast.every == 0:
            self._component("forecast", evaluation, lambda: self._forecasts(evaluation))
        if self.alert_rules:
            self._component("alerts", evaluation, lambda: self._alerts(evaluation))
        metrics.update(cost_metrics(done, merged.tokens, started))
        return evaluation

    def _component(self, name: str, evaluation: Evaluation, run: Callable[[], None]) -> None:
        """Run one rank-0 component; its failure is recorded and logged, the proxies still count."""
        started = time.perf_counter()
        try:
            run()
        except Exception as exc:
            logger.error("evalcast: %s failed at step %d.\n%s", name, evaluation.record["step"], traceback.format_exc())
            evaluation.record.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
            if self.config.strict:
                raise
        evaluation.metrics[metric_name("cost", f"{name}_seconds")] = time.perf_counter() - started

    def _probe(self, evaluation: Evaluation, payloads: list[LocalResult], ctx: TrainingContext, plan: _Plan) -> None:
        assert self.probe is not None and self.store is not None
        features = self.probe.features(payloads, evaluation.record["_arrays"])
        anchor_errors = [p.anchor_error for p in payloads if p.anchor_error]
        if anchor_errors:
            evaluation.record.setdefault("errors", {})["anchor"] = "; ".join(anchor_errors)
        anchor = self.probe.anchor_results(payloads) if plan.anchor and not anchor_errors else None
        metrics, part, p_solve = self.probe.observe(ctx.step, features, anchor, self.store,
                                                    self.config.save_features)
        if anchor is not None:
            part["anchor"].update(seconds=max(p.anchor_seconds for p in payloads),
                                  tokens_generated=sum(p.anchor_tokens for p in payloads))
            metrics[metric_name("cost", "anchor_seconds")] = part["anchor"]["seconds"]
        evaluation.metrics.update(metrics)
        evaluation.record.update(part)
        if p_solve:
            self._predictions[ctx.step] = p_solve

    def _forecasts(self, evaluation: Evaluation) -> None:
        assert self.forecast is not None
        step = evaluation.record["step"]
        records = [r for r in self._history_cache() if r.get("status") == "ok" and r["step"] < step]
        records.append(evaluation.record)
        groups = self._forecast_groups()
        groups_of = {} if self.probe is None else self.probe.groups
        inputs, reason = build_inputs(records, groups, self.budget, self._predictions, groups_of, self.forecast)
        results = forecast_run(inputs, self.forecast.config) if inputs else refused_everywhere(groups, "no_budget",
                                                                                               reason)
        x_name = run_axis(records)[1]
        for group, result in results.items():
            evaluation.metrics.update(forecast_metrics(group, result))
            curve = forecast_curve(group, result, x_name)
            if curve is not None:
                evaluation.curves[metric_name(group, "forecast")] = curve
        evaluation.record["forecasts"] = {group: r.to_dict() for group, r in results.items()}
        evaluation.tables["evalcast/forecasts"] = (FORECAST_COLUMNS, forecast_rows(results))

    def _forecast_groups(self) -> list[str]:
        """``all``, every task, and every domain group whose questions are not exactly a task's or all's."""
        members = self.groups.members
        seen = [frozenset(members[g].tolist()) for g in ["all", *self.experts.tasks] if g in members]
        domains = [g for g in members if g.startswith("domain/") and frozenset(members[g].tolist()) not in seen]
        return ["all", *self.experts.tasks, *domains]

    def _alerts(self, evaluation: Evaluation) -> None:
        """Every rule sees the history up to this checkpoint; stop if any raised alert asks for it."""
        records = [r for r in self._history_cache() if r["step"] < evaluation.record["step"]]
        records.append(evaluation.record)
        raised = tuple(a for rule in self.alert_rules if (a := rule.check(records)) is not None)
        evaluation.record["alerts"] = [a.to_dict() for a in raised]
        evaluation.decision = Decision(ok=True, stop_training=any(a.stop_training for a in raised), alerts=raised)

    def _record(self, ctx: TrainingContext, metrics: dict[str, float]) -> dict[str, Any]:
        return {"step": ctx.step, "tokens_seen": ctx.tokens_seen, "epoch": ctx.epoch, "time": time.time(),
                "session": self.session, "status": "ok", "train": dict(ctx.train), "metrics": metrics}

    def _history_cache(self) -> list[dict[str, Any]]:
        """Rank 0's in-memory history, loaded (and the probe restored) once per session or rewind."""
        assert self.store is not None
        if self._records is None:
            self._records = self.store.history()
            steps = [r["step"] for r in self._records if r.get("status") == "ok"]
            self._predictions = {}
            for step in steps:
                arrays = self.store.load_arrays(step, PREDICTIONS)
                if arrays is not None:
                    self._predictions[step] = dict(zip(arrays["ids"].tolist(), arrays["p"].tolist()))
            if self.probe is not None:
                self.probe.restore(self.store, [r["step"] for r in self._records if "anchor" in r])
        return self._records

    def _commit(self, evaluation: Evaluation, ctx: TrainingContext) -> None:
        """Rank 0: write the record (or the skip) and log; a failure here is logged, never raised."""
        assert self.store is not None
        try:
            if self.store.read_meta() is None:
                self.store.write_meta(self._meta())
            records = self._history_cache()
            if not evaluation.ok:
                evaluation.record = {"step": ctx.step, "tokens_seen": ctx.tokens_seen, "time": time.time(),
                                     "session": self.session, "status": "skipped",
                                     "reason": evaluation.decision.reason}
                if self.probe is not None:  # an anchor added to the probe before the decision was lost
                    self._records = None
                logger.warning("evalcast: step %d skipped: %s", ctx.step, evaluation.decision.reason)
            arrays = evaluation.record.pop("_arrays", None)
            if arrays is not None and self.config.save_examples:
                self.store.save_arrays(ctx.step, "examples", arrays)
            self.store.append(evaluation.record)
            if self._records is not None:
                records[:] = [r for r in records if r["step"] != ctx.step] + [evaluation.record]
            if not evaluation.ok:
                return
            self.tracker_call("log", evaluation.metrics, step=ctx.step)
            for name, curve in evaluation.curves.items():
                self.tracker_call("log_curve", name, curve, step=ctx.step)
            for name, (columns, rows) in evaluation.tables.items():
                self.tracker_call("log_table", name, columns, rows, step=ctx.step)
            for alert in evaluation.decision.alerts:
                logger.warning("evalcast alert at step %d: %s: %s", ctx.step, alert.title, alert.text)
                self.tracker_call("alert", alert.title, alert.text, level=alert.level, step=ctx.step)
            for listener in self.listeners:
                listener(evaluation, ctx)
        except Exception:
            logger.error("evalcast: writing step %d failed.\n%s", ctx.step, traceback.format_exc())
            if self.config.strict:
                raise

    def _meta(self) -> dict[str, Any]:
        table = self.experts.table
        return {"expert_set": self.experts.fingerprint, "tokenizer": self.experts.tokenizer_fingerprint,
                "rows": len(self.experts), "tasks": self.experts.tasks, "groups": self.groups.groups,
                "tokens_scored": int(table.scored_lengths[table.kind == EXPERT].sum()),
                "weightings": self.experts.weighting_names, "stats": list(self.config.stats.names),
                "probe_questions": None if self.probe is None else self.probe.ids,
                "host": socket.gethostname(), "created": time.time(), "torch": torch.__version__}

    def close(self) -> None:
        """Finish the trackers (each finishes only a run or writer it opened itself)."""
        self.tracker_call("finish")
