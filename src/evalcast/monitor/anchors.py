"""Anchor evaluations: real generation + scoring on a small fixed subset, at a few checkpoints.

Anchors give the probe its labels and the accuracy~proxy fit its points. They cost what a generative
evaluation costs, so they run on a schedule the user sets: every Nth evaluation, at listed steps,
and/or while their cumulative wall time stays inside a budget in seconds. The question subset (the
*anchor questions*, default ≤ 256, stratified by task; the probe reads their features at every
checkpoint) is fixed by hashing record ids, so it is the same on every rank and after every restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from torch import nn

from evalcast.data.expert_set import ExpertSet
from evalcast.data.records import ExpertRecord
from evalcast.generate import DecodeConfig, QuestionResult, ScorerSpec, check_scorer_spec, evaluate_generative
from evalcast.runs.record import Record
from evalcast.validation import above, at_least, check_config, each


@dataclass(frozen=True)
class AnchorConfig:
    """When and how anchors run: ``Monitor(anchors=AnchorConfig(...))``."""

    every: int | None = 4
    """Run an anchor at every ``every``-th evaluation, the first included (1: every save; None: not by count)."""
    steps: tuple[int, ...] = ()
    """Also at these training steps."""
    budget_s: float | None = None
    """Skip scheduled anchors once their cumulative wall time plus the last anchor's would exceed this many
    seconds."""
    questions: int = 256
    """Size of the anchor question subset (stratified by task)."""
    decode: DecodeConfig = field(default_factory=lambda: DecodeConfig(max_new_tokens=256, progress=False))
    """Decoding of the anchor evaluation; its prompt format is replaced by the expert set's, so generation
    starts from exactly the prompts whose features the probe reads."""
    scorer: ScorerSpec | None = None
    """How completions are judged: a ``Scorer`` (``ExactMatchScorer(patterns=...)``, ``NumericScorer``,
    ``CodeExecutionScorer``), any callable ``(record, completion) -> bool | ScoreResult``, or a mapping
    task -> one of these (the monitor refuses task names its expert set lacks). None (and tasks the mapping
    leaves out): code sandbox for records with tests, else exact match on the answer read with the row's
    ``meta["answer_pattern"]`` or GSM8K's ``#### answer`` line."""

    def __post_init__(self) -> None:
        check_config(self, every=at_least(1), steps=each(at_least(0)), budget_s=above(0), questions=at_least(1))
        check_scorer_spec(self.scorer, "AnchorConfig.scorer")


def anchor_due(config: AnchorConfig, step: int, history: Sequence[Record]) -> bool:
    """Whether the evaluation at ``step`` runs an anchor, from the run's history alone (so a resumed or
    rewound run schedules exactly as an uninterrupted one)."""
    done = [r for r in history if r.step < step]
    wanted = step in config.steps or (config.every is not None and len(done) % config.every == 0)
    if wanted and config.budget_s is not None:
        costs = [r.anchor.seconds for r in done if r.anchor is not None]
        wanted = sum(costs) + (costs[-1] if costs else 0.0) <= config.budget_s
    return wanted


def anchor_questions(experts: ExpertSet, limit: int) -> np.ndarray:
    """Table rows of the anchor questions: up to ``limit`` expert sequences (the evaluation questions when the
    set has them), spread over tasks by share."""
    table = experts.table
    # multiple choice needs no generation
    rows = np.flatnonzero((table.kind == experts.question_kind) & (table.choice < 0))
    tasks = np.array([experts.records[table.record_index[i]].task for i in rows])
    keys = np.array([hashlib.blake2b(experts.records[table.record_index[i]].id.encode(), digest_size=8).hexdigest()
                     for i in rows])
    chosen: list[int] = []
    names = sorted(set(tasks))
    for task in names:
        members = rows[tasks == task][np.argsort(keys[tasks == task])]
        quota = round(limit * len(members) / len(rows)) if len(rows) > limit else len(members)
        chosen.extend(members[:max(1, quota)].tolist())
    return np.array(sorted(chosen[:max(limit, len(names))]), dtype=np.int64)


def shard(items: Sequence[int], rank: int, world: int) -> tuple[list[int], int]:
    """This rank's share and the padded share size (every rank makes the same number of generate calls)."""
    mine = list(items[rank::world])
    size = -(-len(items) // world)
    return mine, size


def run_anchor(model: nn.Module, experts: ExpertSet, rows: Sequence[int], config: AnchorConfig, *, rank: int,
               world: int, synced: bool) -> tuple[list[QuestionResult], int]:
    """Generate and score this rank's share of the anchor questions (padding shares under ``synced``).

    Returns the per-question results and the number of tokens generated.
    """
    mine, size = shard(rows, rank, world)
    records: list[ExpertRecord] = [experts.records[experts.table.record_index[i]] for i in mine]
    padded = records
    if synced and len(records) < size:
        filler = experts.records[experts.table.record_index[rows[0]]]
        padded = records + [replace(filler, id=f"__evalcast_filler_{k}") for k in range(size - len(records))]
    if not padded:
        return [], 0
    decode = replace(config.decode, prompt_format=experts.config.prompt_format, synced_gpus=synced)
    result = evaluate_generative(model, experts.tokenizer, padded, config=decode, scorer=config.scorer)
    return list(result.questions[:len(records)]), result.tokens_generated


def needs_synced_generation(model: nn.Module, world: int) -> bool:
    """FSDP2 (DTensor parameters) and ZeRO-3 (``ds_id``) gather parameters inside every forward."""
    if world <= 1:
        return False
    return any(type(p).__name__ == "DTensor" or hasattr(p, "ds_id") for p in model.parameters())
