"""The part of a checkpoint every rank runs on its own share: the pass, the probe features, the anchor.

:func:`prepare_local` does everything that can fail before the first forward (where a sharded model's
collectives begin), so that the ranks can agree to go or skip first; :func:`forward_local` runs inside
:func:`~evalcast.stats.isolation.isolated` and ends in a picklable :class:`LocalResult` (or the error the
rank hit), which the exchange carries to rank 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from evalcast.data.batching import BatchPlan
from evalcast.data.expert_set import ExpertSet
from evalcast.errors import ErrorPolicy
from evalcast.monitor.anchors import AnchorConfig, needs_synced_generation, run_anchor
from evalcast.monitor.config import MonitorConfig, TrainingContext
from evalcast.stats.features import FeatureTap
from evalcast.stats.forward import StatsTap, run_forward
from evalcast.stats.head import OutputHead


@dataclass(frozen=True)
class LocalPlan:
    """What this checkpoint runs (the same on every rank): features of the anchor questions (their table
    rows; None without a probe), token features for an attention probe, and the anchor if one is due."""

    question_rows: np.ndarray | None
    capture_tokens: bool
    anchor: AnchorConfig | None


@dataclass
class LocalResult:
    """One rank's share of a checkpoint: sums for the sequences it scored, features of its anchor
    questions, anchor results of its share of questions, or the error it hit."""

    rank: int
    rows: np.ndarray | None = None
    sums: np.ndarray | None = None
    weight_sums: np.ndarray | None = None
    tokens: np.ndarray | None = None
    forward_seconds: float = 0.0
    tokens_processed: int = 0
    feature_layers: tuple[int, ...] = ()
    feature_slots: np.ndarray | None = None
    feature_last: np.ndarray | None = None
    feature_mean: np.ndarray | None = None
    feature_tokens: list[np.ndarray] | None = None
    anchor_questions: list[dict[str, Any]] = field(default_factory=list)
    anchor_seconds: float = 0.0
    anchor_tokens: int = 0
    anchor_error: str | None = None
    error: str | None = None


@dataclass
class LocalWork:
    """What a rank prepares before its first forward (where a sharded model's collectives begin): the
    output head, this rank's batches and the taps that read the pass."""

    plan: LocalPlan
    device: torch.device
    batches: list[BatchPlan]
    stats: StatsTap
    features: FeatureTap | None


def prepare_local(model: nn.Module, experts: ExpertSet, head: OutputHead, config: MonitorConfig, plan: LocalPlan,
                  rank: int, world: int) -> LocalWork:
    """Everything that can fail before the forward pass (the monitor agrees on it across ranks first)."""
    device = next(model.parameters()).device
    batches = experts.batches(max_tokens=config.max_tokens, pad_multiple=config.pad_multiple,
                              max_batch_size=config.max_batch_size, world_size=world, rank=rank)
    features = (FeatureTap(rows=plan.question_rows, capture_tokens=plan.capture_tokens)
                if plan.question_rows is not None else None)
    return LocalWork(plan, device, batches, StatsTap(experts, head, config.stats, device), features)


def forward_local(model: nn.Module, experts: ExpertSet, work: LocalWork, config: MonitorConfig,
                  ctx: TrainingContext, rank: int, world: int) -> LocalResult:
    """This rank's forward pass (+ features) and anchor share; the caller isolates the model."""
    plan, device, features = work.plan, work.device, work.features
    result = run_forward(model, experts, work.batches, work.stats, [features] if features else [], device=device,
                         autocast_dtype=ctx.autocast_dtype, progress=config.progress and rank == 0)
    rows = np.flatnonzero(result.scored)
    local = LocalResult(rank=rank, rows=rows, sums=result.sums[rows], weight_sums=result.weight_sums[rows],
                        tokens=result.tokens[rows], forward_seconds=result.seconds,
                        tokens_processed=result.tokens_processed)
    if features is not None:
        local.feature_slots, local.feature_last, local.feature_mean, local.feature_tokens = features.collect()
        local.feature_layers = tuple(features.layers or ())
    if plan.anchor is not None and plan.question_rows is not None:
        started = time.perf_counter()
        # a failed anchor costs its labels, not the checkpoint's proxies: recorded, never re-raised
        with ErrorPolicy().guard(f"anchor evaluation at step {ctx.step} on rank {rank}", reraise=False) as failure:
            with torch.autocast(device.type, dtype=ctx.autocast_dtype, enabled=ctx.autocast_dtype is not None):
                questions, local.anchor_tokens = run_anchor(model, experts, plan.question_rows.tolist(), plan.anchor,
                                                            rank=rank, world=world,
                                                            synced=needs_synced_generation(model, world))
            local.anchor_questions = [q.to_json() for q in questions]
        if failure:
            local.anchor_error = f"rank {rank}: {failure.message}"
        local.anchor_seconds = time.perf_counter() - started
    return local


def run_local(model: nn.Module, experts: ExpertSet, head: OutputHead, config: MonitorConfig, plan: LocalPlan,
              ctx: TrainingContext, rank: int, world: int) -> LocalResult:
    """:func:`prepare_local` then :func:`forward_local` (one rank's whole share)."""
    work = prepare_local(model, experts, head, config, plan, rank, world)
    return forward_local(model, experts, work, config, ctx, rank, world)
