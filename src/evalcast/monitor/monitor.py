"""The framework-agnostic core: what happens at one checkpoint, on every rank.

``Monitor.evaluate`` is all a framework adapter calls::

    rank 0        plan              from the run history: does an anchor run at this checkpoint?
    every rank    exchange.agree    one plan for all ranks
    every rank    prepare           model checks and this rank's batches: all that can fail before the
                                    first collective of a sharded forward
    every rank    exchange.gather   ready / not ready → rank 0, then exchange.agree: go, or skip on every
                                    rank before any forward
    every rank    isolated(model):  forward pass over this rank's shard → per-sequence sums, features of
                                    the anchor questions; anchor generation on this rank's share of them
                                    (an exception here is caught: the payload becomes the error)
    every rank    exchange.gather   payloads → rank 0 (a missing payload after timeout_s = failure)
    rank 0        RankZero.conclude proxies and pairs, then the steps: probe, forecasts, alerts → a Decision
    every rank    exchange.agree    one Decision for all ranks (skip, stop training, alerts)
    rank 0        RankZero.commit   the record and its arrays to the run directory, then the trackers

Every error path runs under the monitor's :class:`~evalcast.errors.ErrorPolicy`: nothing raises into the
training loop unless ``strict=True``, and every rank returns the same decision. One exception: the model's
own forward raising on one rank of a sharded model (:class:`ShardedForwardError`, see docs/guarantees.md).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from evalcast.alerts import Alert, AlertRule
from evalcast.data.expert_set import ExpertSet
from evalcast.errors import ErrorPolicy
from evalcast.forecast import ForecastConfig
from evalcast.generate import check_scorer_tasks
from evalcast.monitor.alert_step import AlertStep
from evalcast.monitor.anchors import AnchorConfig, anchor_due, anchor_questions, needs_synced_generation
from evalcast.monitor.config import Budget, MonitorConfig, TrainingContext
from evalcast.monitor.evaluation import Evaluation, EvaluationSkipped, ShardedForwardError
from evalcast.monitor.exchange import Decision, Exchange, Ready, make_exchange, readiness_problems
from evalcast.monitor.forecast_step import ForecastStep, forecast_groups
from evalcast.monitor.local import LocalPlan, LocalResult, LocalWork, forward_local, prepare_local
from evalcast.monitor.probe_step import ProbeStep
from evalcast.monitor.rank_zero import RankZero
from evalcast.monitor.saved import References
from evalcast.probe import ProbeConfig
from evalcast.proxy.aggregate import GroupIndex
from evalcast.proxy.choices import choice_groups
from evalcast.runs import Record, RunHistory, RunStore
from evalcast.stats.forward import ModelForwardError
from evalcast.stats.head import check_compatible, unwrap
from evalcast.stats.isolation import isolated
from evalcast.trackers.base import CompositeTracker, Tracker

logger = logging.getLogger("evalcast")
T = TypeVar("T")


@dataclass(frozen=True)
class _Plan:
    skip: str = ""
    anchor: bool = False


class Monitor:
    """Evaluates a live model on an expert set at checkpoints and keeps the run's history.

    run_dir: the local run directory (history, arrays, state); reopening it continues the run.
    trackers: where metrics go besides the run directory (W&B, TensorBoard, MLflow ...).
    budget: the training budget (forecast horizon); framework adapters fill in what the trainer knows.
    anchors: sparse real evaluations (generation + scoring) of the anchor questions; they label the probe
        and anchor the accuracy forecasts. Without anchors there is no pass@1, only proxies.
    probe: the hidden-state probe's settings (on whenever anchors are).
    forecast: forecast settings, ``None`` to turn forecasts off.
    alerts: rules evaluated at every checkpoint (early stop, regression, data mix); off unless given.
    on_alert: callables that receive every alert raised, on every rank (e.g. to re-weight a sampler).
    name: distinguishes several monitors in one job (store keys, checkpoint state).
    references: run directories of earlier runs on the same expert set (pilots, other sizes, finished or
        not); forecasts transfer the proxy's decay shape and the accuracy link from them
        (``docs/forecasting.md``). A run on another expert set is refused here, with ``ValueError``.
    n_params: the model's non-embedding parameter count, recorded for runs that use this one as a
        reference; counted from the model (parameters outside ``nn.Embedding`` modules) when not given
        in a single-process job.
    """

    def __init__(self, experts: ExpertSet, *, run_dir: str | Path | None = None,
                 config: MonitorConfig = MonitorConfig(), trackers: Sequence[Tracker] = (),
                 budget: Budget = Budget(), anchors: AnchorConfig | None = None, probe: ProbeConfig | None = None,
                 forecast: ForecastConfig | None = ForecastConfig(), alerts: Sequence[AlertRule] = (),
                 on_alert: Sequence[Callable[[Alert], None]] = (), name: str = "evalcast",
                 references: Sequence[str | Path] = (), n_params: int | None = None) -> None:
        self.experts, self.config, self.name, self.budget, self.anchors = experts, config, name, budget, anchors
        if anchors is not None:
            check_scorer_tasks(anchors.scorer, experts.tasks, "AnchorConfig.scorer")
        self.n_params = n_params
        if references and forecast is None:
            raise ValueError("Monitor(references=...) needs forecasts: give forecast=ForecastConfig(...), not None")
        self.policy = ErrorPolicy(strict=config.strict)
        self.groups = GroupIndex.build(experts)
        self.user_trackers: list[Tracker] = list(trackers)
        self.framework_trackers: list[Tracker] = []
        self.trackers = CompositeTracker(self.user_trackers, self.policy, config.tracker_timeout_s)
        self.alert_hooks = list(on_alert)
        self.session = uuid.uuid4().hex[:12]
        self.last: Evaluation | None = None
        self.probe: ProbeStep | None = None
        if (anchors is not None or probe is not None) and experts.n_choice_rows == experts.n_expert:
            raise ValueError("anchors and the probe need open-ended rows, and every row of this expert set is multiple "
                             "choice: its accuracy is measured exactly at every save; pass anchors=None, probe=None")
        if anchors is not None or probe is not None:
            rows = anchor_questions(experts, anchors.questions if anchors else 256)
            self.probe = ProbeStep(experts, rows, probe or ProbeConfig())
        refs = References(references, experts.fingerprint, forecast) if references and forecast else None
        self.forecast = None if forecast is None else ForecastStep(
            forecast, forecast_groups(self.groups, experts.tasks), self.probe.live.groups if self.probe else {},
            choice_groups(experts, self.groups), self.policy, None if refs is None else refs.for_groups)
        self.alerts = AlertStep(alerts) if alerts else None
        self.rank_zero = RankZero(experts, self.groups, config, self.policy, self.session, self.trackers, self.probe,
                                  self.forecast, self.alerts)
        self._exchange: Exchange | None = None
        self._round = 0
        self._decided: dict[int, Evaluation] = {}
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
        self.rank_zero.history = RunHistory(store, on_load=[self.probe.restore] if self.probe is not None else [])
        return store

    def use_framework_trackers(self, trackers: Sequence[Tracker]) -> None:
        """Trackers found in the trainer (its W&B run, TensorBoard writer ...), replacing earlier ones."""
        self.framework_trackers = list(trackers)
        self.trackers.trackers = [*self.user_trackers, *self.framework_trackers]

    def set_budget(self, budget: Budget) -> None:
        """Set the horizon (adapters read it from the trainer; a token budget given by the user is kept)."""
        self.budget = budget

    @property
    def store(self) -> RunStore | None:
        history = self.rank_zero.history
        return None if history is None else history.store

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

    def history(self) -> list[Record]:
        """The run's records (one per evaluated checkpoint, by step), read from the run directory."""
        return [] if self.store is None else self.store.history()

    def rewind(self, step: int) -> None:
        """Training resumed from the checkpoint at ``step``: later records belong to a lost future."""
        self._decided = {s: e for s, e in self._decided.items() if s <= step}
        if self.rank_zero.history is not None and self.is_main:
            self.rank_zero.history.rewind(step)

    def state_dict(self) -> dict[str, Any]:
        """What a trainer checkpoint keeps of the monitor (the run directory holds the rest)."""
        return {"name": self.name, "last_step": max(self._decided, default=None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Checks that a trainer checkpoint belongs to this monitor (the run directory is the source of truth)."""
        if state.get("name", self.name) != self.name:
            raise ValueError(f"checkpoint state of evalcast monitor {state['name']!r} given to {self.name!r}")

    # ---------------------------------------------------------------- the checkpoint
    def step(self, model: nn.Module, *, step: int, every: int = 1, **context: Any) -> Evaluation | None:
        """Plain-loop API: evaluate when ``step`` is a multiple of ``every``, else do nothing.

        ``context`` holds the other fields of :class:`TrainingContext` (``tokens_seen``, ``train`` ...).
        """
        if every < 1:
            raise ValueError(f"every={every}: give a whole number of steps >= 1")
        if step % every:
            return None
        return self.evaluate(model, TrainingContext(step=step, **context))

    def evaluate(self, model: nn.Module, context: TrainingContext | int, **kwargs: Any) -> Evaluation:
        """Evaluate ``model`` at this checkpoint on every rank; all ranks get the same decision."""
        ctx = context if isinstance(context, TrainingContext) else TrainingContext(step=int(context), **kwargs)
        if ctx.step in self._decided:  # e.g. Lightning's save_last saving twice at one step
            return self._decided[ctx.step]
        if ctx.max_steps is not None or ctx.max_tokens is not None:  # the loop knows its budget
            self.budget = replace(self.budget, max_steps=ctx.max_steps or self.budget.max_steps,
                                  max_tokens=ctx.max_tokens or self.budget.max_tokens)
        if self.rank_zero.history is None:
            self.bind_run_dir("evalcast_run")
        if self.n_params is None and self.exchange.world_size == 1:
            self.n_params = non_embedding_parameters(unwrap(model))
        self._round += 1
        started = time.perf_counter()
        timeout = self.config.timeout_s
        plan = self._agree("plan", self._plan(ctx) if self.is_main else None, timeout,
                           _Plan(skip="rank 0 planned nothing in time"))
        error: BaseException | None = None
        work: LocalWork | None = None
        if not plan.skip:  # everything that can fail before a collective is decided, then agreed, first
            work, ready, error = self._prepare(unwrap(model), plan)
            readies = self._gather("ready", ready, timeout)
            go = replace(plan, skip=readiness_problems(readies, timeout)) if self.is_main else None
            plan = self._agree("go", go, timeout, _Plan(skip="rank 0 gave no go in time"))
        if plan.skip:  # known to every rank alike: no forward, no further round
            decision = Decision(ok=False, reason=plan.skip)
            evaluation: Evaluation | None = Evaluation(decision)
        else:
            assert work is not None
            local, error = self._forward(unwrap(model), work, ctx)
            payloads = self._gather("payload", local, timeout)
            evaluation = None if payloads is None else self.rank_zero.conclude(payloads, ctx, plan.anchor, started,
                                                                               self.budget, self.n_params)
            skip = Decision(ok=False, reason="rank 0 decided nothing in time")
            decision = self._agree("decision", evaluation.decision if evaluation else None, 2 * timeout, skip)
        if evaluation is None or decision != evaluation.decision:
            evaluation = Evaluation(decision)
        if self.is_main:
            self.rank_zero.commit(evaluation, ctx, self.budget, self.n_params)
        for alert in decision.alerts:
            for hook in self.alert_hooks:
                with self.policy.guard(f"alert hook {hook!r}"):
                    hook(alert)
        self._decided[ctx.step] = self.last = evaluation
        if self.config.strict and not decision.ok:
            if error is not None:
                raise error
            raise EvaluationSkipped(decision.reason)
        return evaluation

    def _agree(self, what: str, proposal: T | None, timeout: float, fallback: T) -> T:
        """Rank 0's proposal on every rank; a failed exchange (a broken store) is logged and means ``fallback``."""
        with self.policy.guard(f"agreeing on the {what} of round {self._round} ({fallback})") as failure:
            return self.exchange.agree(f"{self._round}/{what}", proposal, timeout, fallback)
        assert failure
        return fallback

    def _gather(self, what: str, payload: Any, timeout: float) -> list[Any] | None:
        """Every rank's payload on rank 0 (None elsewhere); after a failed exchange, nothing from anyone."""
        with self.policy.guard(f"collecting the {what}s of round {self._round} (counted as missing)") as failure:
            return self.exchange.gather(f"{self._round}/{what}", payload, timeout)
        assert failure
        return [None] * self.exchange.world_size if self.is_main else None

    def _plan(self, ctx: TrainingContext) -> _Plan:
        with self.policy.guard(f"planning step {ctx.step}", reraise=False) as failure:
            records = self.rank_zero.records()
            return _Plan(anchor=self.anchors is not None and anchor_due(self.anchors, ctx.step, records))
        return _Plan(skip=f"rank 0: {failure.message}")

    def _prepare(self, model: nn.Module, plan: _Plan) -> tuple[LocalWork | None, Ready, BaseException | None]:
        """This rank's checks and batches before any forward; a failure here becomes its "not ready"."""
        rank, world = self.exchange.rank, self.exchange.world_size
        with self.policy.guard(f"preparing the evaluation on rank {rank} (this save is skipped)",
                               reraise=False) as failure:  # re-raised in strict mode once every rank agreed
            head = check_compatible(model, vocab_size=self.experts.vocab_size,
                                    longest=int(self.experts.table.lengths.max()))
            local_plan = LocalPlan(question_rows=None if self.probe is None else self.probe.rows,
                                   capture_tokens=self.probe is not None and self.probe.config.model == "attention",
                                   anchor=self.anchors if plan.anchor else None)
            work = prepare_local(model, self.experts, head, self.config, local_plan, rank, world)
            return work, Ready(batches=len(work.batches)), None
        return None, Ready(error=f"rank {rank}: {failure.message}"), failure.error

    def _forward(self, model: nn.Module, work: LocalWork, ctx: TrainingContext) -> tuple[LocalResult,
                                                                                          BaseException | None]:
        rank, world = self.exchange.rank, self.exchange.world_size
        what = f"evaluation at step {ctx.step} on rank {rank} (this save is skipped)"
        # re-raised in strict mode once every rank agreed
        with self.policy.guard(what, reraise=False) as failure, isolated(model):
            return forward_local(model, self.experts, work, self.config, ctx, rank, world), None
        error = failure.error
        if isinstance(error, ModelForwardError):  # the model's own exception is the one to report
            error = error.__cause__ or error
            if needs_synced_generation(model, world):
                raise ShardedForwardError(
                    f"evalcast: the model's forward raised {type(error).__name__}: {error} during the evaluation at "
                    f"step {ctx.step} on rank {rank} of a sharded model; the other ranks wait in a collective this "
                    "rank will not join, so training cannot continue safely (see docs/guarantees.md)") from error
        return LocalResult(rank=rank, error=f"rank {rank}: {type(error).__name__}: {error}"), error

    def close(self) -> None:
        """Finish the trackers (each finishes only a run or writer it opened itself)."""
        self.trackers.finish()


def non_embedding_parameters(model: nn.Module) -> int:
    """Parameters outside ``nn.Embedding`` modules (a head tied to the embedding counted once, as embedding)."""
    embedding = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embedding)
