"""Rank 0: the ranks' shards merged into one set of per-sequence sums, and what is computed from them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evalcast.data.expert_set import ExpertSet
from evalcast.data.table import EVAL, EXPERT
from evalcast.monitor.local import LocalResult
from evalcast.pairs.margins import pair_margins, pair_metrics
from evalcast.probe.live import QUESTION_PROXIES, question_proxies
from evalcast.proxy.aggregate import GroupIndex, aggregate, metric_name
from evalcast.proxy.choices import ACCURACIES, choice_metrics, choice_scores
from evalcast.stats.features import CheckpointFeatures


@dataclass(frozen=True)
class CheckpointSums:
    """Per-sequence sums of the whole expert set at one checkpoint (see ``ForwardResult``)."""

    sums: np.ndarray
    weight_sums: np.ndarray
    tokens: np.ndarray


def merge(payloads: Sequence[LocalResult], n_seq: int) -> CheckpointSums:
    """Put every rank's rows in place; every sequence must be scored exactly once."""
    first = payloads[0]
    assert first.sums is not None and first.weight_sums is not None
    sums = np.zeros((n_seq, *first.sums.shape[1:]))
    weight_sums = np.zeros((n_seq, first.weight_sums.shape[1]))
    tokens = np.zeros(n_seq)
    seen = np.zeros(n_seq, dtype=int)
    for p in payloads:
        sums[p.rows], weight_sums[p.rows], tokens[p.rows] = p.sums, p.weight_sums, p.tokens
        seen[p.rows] += 1
    if not (seen == 1).all():
        raise RuntimeError(f"{int((seen == 0).sum())} sequences unscored, {int((seen > 1).sum())} scored twice")
    return CheckpointSums(sums, weight_sums, tokens)


def checkpoint_metrics(experts: ExpertSet, groups: GroupIndex, stat_names: Sequence[str],
                       merged: CheckpointSums) -> dict[str, float]:
    """Proxy metrics per group and weighting, the pair metrics and the multiple-choice metrics."""
    metrics = aggregate(merged.sums, merged.weight_sums, merged.tokens, experts.table.n_bytes, groups, stat_names,
                        experts.weighting_names)
    token_w = experts.weighting_names.index("token")
    nll_sums = merged.sums[:, token_w, list(stat_names).index("nll")]
    metrics.update(pair_metrics(experts, pair_margins(experts, nll_sums)))
    metrics.update(choice_metrics(experts, choice_scores(experts, nll_sums, merged.tokens), groups))
    return metrics


def cost_metrics(payloads: Sequence[LocalResult], tokens: np.ndarray, started: float) -> dict[str, float]:
    """Wall time of the whole checkpoint, of the slowest rank's pass, and tokens scored / processed."""
    return {
        metric_name("cost", "seconds"): time.perf_counter() - started,
        metric_name("cost", "forward_seconds"): max(p.forward_seconds for p in payloads),
        metric_name("cost", "tokens_scored"): float(tokens.sum()),
        metric_name("cost", "tokens_processed"): float(sum(p.tokens_processed for p in payloads)),
    }


def example_arrays(experts: ExpertSet, stat_names: Sequence[str], merged: CheckpointSums) -> dict[str, np.ndarray]:
    """Per expert solution (and evaluation question: its answer after the prompt): token-averaged statistics
    and scored tokens (kept per checkpoint); per multiple-choice question: every choice's log-likelihood and
    whether acc, acc_norm, acc_bytes hold."""
    table = experts.table
    rows = np.flatnonzero(np.isin(table.kind, (EXPERT, EVAL)))
    token_w = experts.weighting_names.index("token")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = merged.sums[rows, token_w, :] / merged.weight_sums[rows, token_w, None]
    ids = np.array([experts.records[r].id for r in table.record_index[rows]])
    out = {"id": ids, "stats": means.astype(np.float32), "tokens": merged.tokens[rows].astype(np.int32),
           "stat_names": np.array(stat_names)}
    scores = choice_scores(experts, merged.sums[:, token_w, list(stat_names).index("nll")], merged.tokens)
    if scores is not None:  # per multiple-choice question: log-likelihood of every choice, and acc/acc_norm/acc_bytes
        correct = scores.correct()
        out.update(choice_id=np.array([experts.records[r].id for r in scores.record_index]),
                   choice_loglik=scores.loglik, choice_correct=np.stack([correct[a] for a in ACCURACIES], axis=1),
                   choice_accuracies=np.array(ACCURACIES))
    return out


def merge_features(payloads: Sequence[LocalResult], ids: Sequence[str],
                   examples: dict[str, np.ndarray]) -> CheckpointFeatures:
    """Every anchor question's features, merged from the ranks' slots, in question order, with its own
    teacher-forced statistics from ``examples`` (the per-example arrays of this checkpoint)."""
    parts = [p for p in payloads if p.feature_slots is not None and len(p.feature_slots)]
    slots = np.concatenate([p.feature_slots for p in parts])
    order = np.argsort(slots)
    if not np.array_equal(slots[order], np.arange(len(ids))):
        raise RuntimeError(f"probe features cover {len(set(slots.tolist()))} of {len(ids)} questions")
    last = np.concatenate([p.feature_last for p in parts])[order]
    mean = np.concatenate([p.feature_mean for p in parts])[order]
    tokens = None
    if all(p.feature_tokens is not None for p in parts):
        flat = [t for p in parts for t in p.feature_tokens]
        tokens = [flat[i] for i in order]
    return CheckpointFeatures(ids=list(ids), layers=parts[0].feature_layers, last=last, mean=mean, tokens=tokens,
                              proxies=question_proxies(examples, ids), proxy_names=QUESTION_PROXIES)
