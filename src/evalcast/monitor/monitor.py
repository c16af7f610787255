"""The framework-agnostic core: what happens at one checkpoint, on every rank.

``Monitor.evaluate`` is all a framework adapter calls::

    every rank    isolated(model):  forward pass over this rank's shard → per-sequence sums
                  (an exception here is caught: the payload becomes the traceback)
    every rank    exchange.gather   payloads → rank 0 (a missing payload after timeout_s = failure)
    rank 0        conclude          aggregate → metrics; propose a Decision (skip on any failure)
    every rank    exchange.agree    one Decision for all ranks
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

import numpy as np
import torch
from torch import nn

from evalcast.data.expert_set import ExpertSet
from evalcast.data.table import EXPERT
from evalcast.monitor.config import Budget, MonitorConfig, TrainingContext
from evalcast.monitor.exchange import Decision, Exchange, make_exchange
from evalcast.monitor.isolation import isolated
from evalcast.monitor.run_store import RunStore
from evalcast.pairs.margins import pair_margins, pair_metrics
from evalcast.proxy.aggregate import GroupIndex, aggregate, metric_name
from evalcast.stats.forward import StatsTap, run_forward
from evalcast.stats.head import OutputHead, check_compatible, unwrap
from evalcast.trackers.base import Tracker

logger = logging.getLogger("evalcast")


class EvaluationSkipped(RuntimeError):
    """Raised in strict mode when a checkpoint could not be evaluated."""


@dataclass
class LocalResult:
    """One rank's share of a checkpoint: sums for the sequences it scored, or the error it hit."""

    rank: int
    rows: np.ndarray | None = None
    sums: np.ndarray | None = None
    weight_sums: np.ndarray | None = None
    tokens: np.ndarray | None = None
    forward_seconds: float = 0.0
    tokens_processed: int = 0
    error: str | None = None


@dataclass
class Evaluation:
    """What ``evaluate`` returns: the shared decision, and on rank 0 the metrics and the stored record."""

    decision: Decision
    metrics: dict[str, float] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.decision.ok


class Monitor:
    """Evaluates a live model on an expert set at checkpoints and keeps the run's history.

    run_dir: the local run directory (history, arrays, state); reopening it continues the run.
    trackers: where metrics go besides the run directory (W&B, TensorBoard, MLflow ...).
    budget: the training budget (forecast horizon); framework adapters fill in what the trainer knows.
    name: distinguishes several monitors in one job (store keys, checkpoint state).
    """

    def __init__(self, experts: ExpertSet, *, run_dir: str | Path | None = None,
                 config: MonitorConfig = MonitorConfig(), trackers: Sequence[Tracker] = (),
                 budget: Budget = Budget(), name: str = "evalcast") -> None:
        self.experts, self.config, self.name, self.budget = experts, config, name, budget
        self.groups = GroupIndex.build(experts)
        self.trackers: list[Tracker] = list(trackers)
        self.framework_trackers: list[Tracker] = []
        self.listeners: list[Callable[[Evaluation, TrainingContext], None]] = []
        self.session = uuid.uuid4().hex[:12]
        self.store: RunStore | None = None
        self._exchange: Exchange | None = None
        self._round = 0
        self._decided: dict[int, Evaluation] = {}
        self._head: OutputHead | None = None
        self.last: Evaluation | None = None
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
        self.store = store
        return store

    def use_framework_trackers(self, trackers: Sequence[Tracker]) -> None:
        """Trackers found in the trainer (its W&B run, TensorBoard writer ...), replacing earlier ones."""
        self.framework_trackers = list(trackers)

    def tracker_call(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call ``method`` on every tracker; one tracker's failure is logged and does not stop the others."""
        for tracker in [*self.trackers, *self.framework_trackers]:
            try:
                getattr(tracker, method)(*args, **kwargs)
            except Exception:  # noqa: BLE001
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
        if self.store is not None and self.is_main and any(r["step"] > step for r in self.history()):
            self.store.rewind(step)

    def state_dict(self) -> dict[str, Any]:
        """What a trainer checkpoint keeps of the monitor (the run directory holds the rest)."""
        return {"name": self.name, "last_step": max(self._decided, default=None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the history itself is re-read from the run directory)."""

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
        round_key = str(self._round)
        started = time.perf_counter()
        local, error = self._local(unwrap(model), ctx)
        payloads = self.exchange.gather(round_key, local, self.config.timeout_s)
        proposal, evaluation = None, None
        if payloads is not None:
            evaluation = self._conclude(payloads, ctx, started)
            proposal = evaluation.decision
        decision = self.exchange.agree(round_key, proposal, self.config.timeout_s)
        if evaluation is None or decision != proposal:
            evaluation = Evaluation(decision)
        if self.is_main:
            self._commit(evaluation, ctx, started)
        self._decided[ctx.step] = self.last = evaluation
        if self.config.strict and not decision.ok:
            if error is not None:
                raise error
            raise EvaluationSkipped(decision.reason)
        return evaluation

    def _local(self, model: nn.Module, ctx: TrainingContext) -> tuple[LocalResult, BaseException | None]:
        rank, world = self.exchange.rank, self.exchange.world_size
        try:
            with isolated(model):
                result = self._forward(model, ctx, rank, world)
            rows = np.flatnonzero(result.scored)
            return LocalResult(rank=rank, rows=rows, sums=result.sums[rows], weight_sums=result.weight_sums[rows],
                               tokens=result.tokens[rows], forward_seconds=result.seconds,
                               tokens_processed=result.tokens_processed), None
        except Exception as exc:  # noqa: BLE001 - never into the training loop (see module docstring)
            logger.error("evalcast: evaluation at step %d failed on rank %d; this save is skipped.\n%s",
                         ctx.step, rank, traceback.format_exc())
            return LocalResult(rank=rank, error=f"rank {rank}: {type(exc).__name__}: {exc}"), exc

    def _forward(self, model: nn.Module, ctx: TrainingContext, rank: int, world: int) -> Any:
        if self._head is None:
            self._head = check_compatible(model, vocab_size=self.experts.vocab_size,
                                          longest=int(self.experts.table.lengths.max()))
        cfg = self.config
        device = next(model.parameters()).device
        plans = self.experts.batches(max_tokens=cfg.max_tokens, pad_multiple=cfg.pad_multiple,
                                     max_batch_size=cfg.max_batch_size, world_size=world, rank=rank)
        tap = StatsTap(self.experts, self._head, cfg.stats, device)
        return run_forward(model, self.experts, plans, tap, device=device, autocast_dtype=ctx.autocast_dtype,
                           progress=cfg.progress and rank == 0)

    def _conclude(self, payloads: list[LocalResult | None], ctx: TrainingContext, started: float) -> Evaluation:
        """Rank 0: merge the shards and compute metrics; any failure becomes a skip decision."""
        problems = [p.error if p is not None else f"rank {r}: no result within {self.config.timeout_s:.0f} s"
                    for r, p in enumerate(payloads) if p is None or p.error]
        if problems:
            return Evaluation(Decision(ok=False, reason="; ".join(str(p) for p in problems)))
        try:
            sums, weight_sums, tokens = self._merge([p for p in payloads if p is not None])
            metrics = self._metrics(sums, weight_sums, tokens)
            metrics.update(self._cost_metrics(payloads, tokens, started))
            record = self._record(ctx, metrics)
            evaluation = Evaluation(Decision(ok=True), metrics=metrics, record=record)
            evaluation.record["_arrays"] = self._example_arrays(sums, weight_sums, tokens)
            return evaluation
        except Exception as exc:  # noqa: BLE001
            logger.error("evalcast: aggregating step %d failed; this save is skipped.\n%s", ctx.step,
                         traceback.format_exc())
            return Evaluation(Decision(ok=False, reason=f"rank 0: {type(exc).__name__}: {exc}"))

    def _merge(self, payloads: list[LocalResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        table = self.experts.table
        first = payloads[0]
        assert first.sums is not None and first.weight_sums is not None
        sums = np.zeros((table.n_seq, *first.sums.shape[1:]))
        weight_sums = np.zeros((table.n_seq, first.weight_sums.shape[1]))
        tokens = np.zeros(table.n_seq)
        seen = np.zeros(table.n_seq, dtype=int)
        for p in payloads:
            sums[p.rows], weight_sums[p.rows], tokens[p.rows] = p.sums, p.weight_sums, p.tokens
            seen[p.rows] += 1
        if not (seen == 1).all():
            raise RuntimeError(f"{int((seen == 0).sum())} sequences unscored, {int((seen > 1).sum())} scored twice")
        return sums, weight_sums, tokens

    def _metrics(self, sums: np.ndarray, weight_sums: np.ndarray, tokens: np.ndarray) -> dict[str, float]:
        names = self.config.stats.names
        metrics = aggregate(sums, weight_sums, tokens, self.experts.table.n_bytes, self.groups, names,
                            self.experts.weighting_names)
        token_w = self.experts.weighting_names.index("token")
        pairs = pair_margins(self.experts, sums[:, token_w, names.index("nll")])
        metrics.update(pair_metrics(self.experts, pairs))
        return metrics

    def _cost_metrics(self, payloads: list[LocalResult | None], tokens: np.ndarray,
                      started: float) -> dict[str, float]:
        done = [p for p in payloads if p is not None]
        return {
            metric_name("cost", "seconds"): time.perf_counter() - started,
            metric_name("cost", "forward_seconds"): max(p.forward_seconds for p in done),
            metric_name("cost", "tokens_scored"): float(tokens.sum()),
            metric_name("cost", "tokens_processed"): float(sum(p.tokens_processed for p in done)),
        }

    def _example_arrays(self, sums: np.ndarray, weight_sums: np.ndarray, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """Per-expert-sequence token-averaged statistics, kept for later fitting (probe, clusters)."""
        table = self.experts.table
        experts = np.flatnonzero(table.kind == EXPERT)
        token_w = self.experts.weighting_names.index("token")
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums[experts, token_w, :] / weight_sums[experts, token_w, None]
        ids = np.array([self.experts.records[r].id for r in table.record_index[experts]])
        return {"id": ids, "stats": means.astype(np.float32), "tokens": tokens[experts].astype(np.int32),
                "stat_names": np.array(self.config.stats.names)}

    def _record(self, ctx: TrainingContext, metrics: dict[str, float]) -> dict[str, Any]:
        return {"step": ctx.step, "tokens_seen": ctx.tokens_seen, "epoch": ctx.epoch, "time": time.time(),
                "session": self.session, "status": "ok", "train": dict(ctx.train), "metrics": metrics}

    def _commit(self, evaluation: Evaluation, ctx: TrainingContext, started: float) -> None:
        """Rank 0: write the record (or the skip) and log; a failure here is logged, never raised."""
        assert self.store is not None
        try:
            if self.store.read_meta() is None:
                self.store.write_meta(self._meta())
            if not evaluation.ok:
                evaluation.record = {"step": ctx.step, "tokens_seen": ctx.tokens_seen, "time": time.time(),
                                     "session": self.session, "status": "skipped",
                                     "reason": evaluation.decision.reason}
                self.store.append(evaluation.record)
                logger.warning("evalcast: step %d skipped: %s", ctx.step, evaluation.decision.reason)
                return
            arrays = evaluation.record.pop("_arrays", None)
            if arrays is not None and self.config.save_examples:
                self.store.save_arrays(ctx.step, "examples", arrays)
            self.store.append(evaluation.record)
            self.tracker_call("log", evaluation.metrics, step=ctx.step)
            for listener in self.listeners:
                listener(evaluation, ctx)
        except Exception:  # noqa: BLE001
            logger.error("evalcast: writing step %d failed.\n%s", ctx.step, traceback.format_exc())
            if self.config.strict:
                raise

    def _meta(self) -> dict[str, Any]:
        table = self.experts.table
        return {"expert_set": self.experts.fingerprint, "tokenizer": self.experts.tokenizer_fingerprint,
                "rows": len(self.experts), "tasks": self.experts.tasks, "groups": self.groups.groups,
                "tokens_scored": int(table.scored_lengths[table.kind == EXPERT].sum()),
                "weightings": self.experts.weighting_names, "stats": list(self.config.stats.names),
                "host": socket.gethostname(), "created": time.time(), "torch": torch.__version__}

    def close(self) -> None:
        """Finish the trackers (each finishes only a run or writer it opened itself)."""
        self.tracker_call("finish")
