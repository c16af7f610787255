"""One teacher-forced forward pass over this rank's batches, with taps that read the model as it runs.

The model's own ``forward`` runs unchanged (its autocast, its FSDP/ZeRO-3 parameter gathering). A
forward pre-hook on the output layer (:class:`StatsTap`) receives the final hidden states, computes the
token statistics in fp32 chunks with that layer's weight and hands the layer only the last position, so
the full ``[batch, seq, vocab]`` logits are never formed. Other taps (hidden-state features for the
probe) hook other layers of the same pass. A tap never raises inside the model's forward (that would
desynchronise ranks mid-collective); it records the error, which is raised after the pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle
from tqdm.auto import tqdm

from evalcast.data.batching import BatchPlan
from evalcast.data.expert_set import ExpertSet
from evalcast.stats.head import OutputHead
from evalcast.stats.token_stats import StatsConfig, fp32_weight, token_statistics


@dataclass
class BatchContext:
    """What taps need to know about the batch being run."""

    plan: BatchPlan
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    lengths: np.ndarray
    prompt_last: np.ndarray


class Tap(Protocol):
    """Reads activations during the pass. ``error`` holds the first exception raised in a hook."""

    error: BaseException | None

    def attach(self, model: nn.Module) -> list[RemovableHandle]: ...

    def start_batch(self, ctx: BatchContext) -> None: ...


@dataclass
class ForwardResult:
    """Per-sequence sums from one rank's share of the pass.

    sums ``[n_seq, n_weightings, n_stats]`` holds Σ_t w·s, weight_sums ``[n_seq, n_weightings]`` Σ_t w and
    tokens ``[n_seq]`` the scored-token count, for every sequence of the expert set (zeros for sequences
    another rank scored); ``scored`` flags this rank's sequences.
    """

    sums: np.ndarray
    weight_sums: np.ndarray
    tokens: np.ndarray
    scored: np.ndarray
    per_token: np.ndarray | None = None
    seconds: float = 0.0
    tokens_processed: int = 0
    batches: int = 0


class StatsTap:
    """Computes token statistics on the output layer's input and accumulates weighted sums per sequence."""

    def __init__(self, expert_set: ExpertSet, head: OutputHead, spec: StatsConfig, device: torch.device,
                 keep_per_token: bool = False) -> None:
        table = expert_set.table
        self.error: BaseException | None = None
        self.calls = 0
        self.head, self.spec = head, spec
        self.vocab = expert_set.vocab_size
        self.weight_names = expert_set.weighting_names
        self.weights = np.stack([table.weights[n] for n in self.weight_names], axis=1)
        n_seq, n_w, n_s = table.n_seq, len(self.weight_names), len(spec.names)
        self.sums = torch.zeros(n_seq, n_w, n_s, dtype=torch.float64, device=device)
        self.weight_sums = torch.zeros(n_seq, n_w, dtype=torch.float64, device=device)
        self.tokens = torch.zeros(n_seq, dtype=torch.float64, device=device)
        self.per_token = (torch.zeros(len(self.weights), n_s, dtype=torch.float32, device=device)
                          if keep_per_token else None)
        self._table, self._device = table, device
        self._scored_offsets = table.scored_offsets
        self._batch: dict[str, torch.Tensor] | None = None

    def attach(self, model: nn.Module) -> list[RemovableHandle]:
        return [self.head.module.register_forward_pre_hook(self._hook)]

    def start_batch(self, ctx: BatchContext) -> None:
        table, width = self._table, ctx.input_ids.shape[1]
        positions, targets, seqs, token_index = [], [], [], []
        for b, i in enumerate(ctx.plan.rows):
            if i < 0:
                continue
            start, length = int(table.solution_start[i]), int(ctx.lengths[b])
            positions.append(b * width + np.arange(start - 1, length - 1))
            targets.append(table.sequence(i)[start:length])
            seqs.append(np.full(length - start, i))
            token_index.append(self._scored_offsets[i] + np.arange(length - start))
        if not positions:
            self._batch = None
            return
        to = lambda a, dtype: torch.as_tensor(np.concatenate(a), dtype=dtype).to(self._device)
        index = np.concatenate(token_index)
        self._batch = {"positions": to(positions, torch.long), "targets": to(targets, torch.long),
                       "seqs": to(seqs, torch.long), "token_index": torch.as_tensor(index).to(self._device),
                       "weights": torch.as_tensor(self.weights[index], dtype=torch.float64).to(self._device)}

    def _hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        hidden = args[0]
        try:
            self.calls += 1
            if self._batch is not None and self.error is None:
                self._accumulate(module, hidden)
        except BaseException as exc:
            self.error = exc
        return (hidden[:, -1:, :], *args[1:])

    def _accumulate(self, module: nn.Module, hidden: torch.Tensor) -> None:
        batch = self._batch
        assert batch is not None
        flat = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["positions"])
        bias = getattr(module, "bias", None)
        stats = token_statistics(flat, fp32_weight(module.weight, self.vocab), bias, batch["targets"], self.spec,
                                 self.head.transform)
        weights = batch["weights"]
        self.sums.index_add_(0, batch["seqs"], weights.unsqueeze(2) * stats.double().unsqueeze(1))
        self.weight_sums.index_add_(0, batch["seqs"], weights)
        self.tokens.index_add_(0, batch["seqs"], torch.ones_like(batch["seqs"], dtype=torch.float64))
        if self.per_token is not None:
            self.per_token[batch["token_index"]] = stats


def batch_tensors(expert_set: ExpertSet, plan: BatchPlan, pad_id: int, device: torch.device) -> BatchContext:
    """Right-padded ids and attention mask for one planned batch (filler rows copy a real sequence)."""
    table = expert_set.table
    rows = np.where(plan.rows < 0, plan.filler, plan.rows)
    ids = np.full((len(rows), plan.length), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    lengths = table.lengths[rows]
    for b, i in enumerate(rows):
        ids[b, :lengths[b]] = table.sequence(i)
        mask[b, :lengths[b]] = 1
    return BatchContext(plan=plan, input_ids=torch.from_numpy(ids).to(device),
                        attention_mask=torch.from_numpy(mask).to(device), lengths=lengths,
                        prompt_last=table.solution_start[rows].astype(np.int64) - 1)


class ModelForwardError(RuntimeError):
    """The model's own forward raised (not evalcast's taps, whose errors surface after the pass)."""


def run_forward(model: nn.Module, expert_set: ExpertSet, plans: list[BatchPlan], stats: StatsTap,
                taps: list[Tap] = (), *, device: torch.device, autocast_dtype: torch.dtype | None = None,
                progress: bool = False) -> ForwardResult:
    """Run ``model`` on ``plans`` (this rank's batches) and return the per-sequence sums.

    The caller owns the isolation (no_grad, eval mode, RNG); this function only runs and reads.
    """
    pad_id = expert_set.tokenizer.pad_token_id
    pad_id = int(pad_id if pad_id is not None else (expert_set.tokenizer.eos_token_id or 0))
    all_taps: list[Any] = [stats, *taps]
    handles = [h for tap in all_taps for h in tap.attach(model)]
    started, processed = time.perf_counter(), 0
    try:
        for plan in tqdm(plans, desc="evalcast: proxy pass", disable=not progress, leave=False):
            ctx = batch_tensors(expert_set, plan, pad_id, device)
            for tap in all_taps:
                tap.start_batch(ctx)
            calls = stats.calls
            try:
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    model(input_ids=ctx.input_ids, attention_mask=ctx.attention_mask, use_cache=False)
            except Exception as exc:
                raise ModelForwardError(f"the model's forward raised {type(exc).__name__}: {exc}") from exc
            if stats.calls != calls + 1:
                raise RuntimeError(
                    f"the output layer ran {stats.calls - calls} times in one forward (expected once): evalcast "
                    "reads the final hidden states where the model applies get_output_embeddings()")
            processed += int(ctx.attention_mask.sum())
    finally:
        for handle in handles:
            handle.remove()
    for tap in all_taps:
        if tap.error is not None:
            raise tap.error
    scored = np.zeros(expert_set.table.n_seq, dtype=bool)
    for plan in plans:
        scored[plan.rows[plan.rows >= 0]] = True
    return ForwardResult(sums=stats.sums.cpu().numpy(), weight_sums=stats.weight_sums.cpu().numpy(),
                         tokens=stats.tokens.cpu().numpy(), scored=scored,
                         per_token=None if stats.per_token is None else stats.per_token.cpu().numpy(),
                         seconds=time.perf_counter() - started, tokens_processed=processed, batches=len(plans))
