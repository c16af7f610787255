"""Discriminative pairs: does the model prefer the expert solution to a minimally flawed one? (``docs/methods.md`` §4)

For a prompt x, the expert response r⁺ and a flawed response r⁻ (wrong answer, corrupted step, broken
format), the score of a response is its per-byte log-likelihood s(r) = Σ_t log p(r_t | x, r_<t) / bytes(r)
(per byte, so the shorter response is not favoured and tokenizers compare). The margin is
Δ = s(r⁺) − s(r⁻); pair accuracy is the share of pairs with Δ > 0. Both come from the same forward pass
as the proxies: negatives are extra sequences of the expert set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalcast.data.expert_set import ExpertSet
from evalcast.data.table import EXPERT, NEGATIVE
from evalcast.proxy.aggregate import metric_name


@dataclass(frozen=True)
class PairMargins:
    """One row per (expert, negative) pair: the record, the flaw category and the per-byte margin."""

    record_index: np.ndarray
    category: list[str]
    margin: np.ndarray


def per_byte_loglik(nll_sums: np.ndarray, n_bytes: np.ndarray) -> np.ndarray:
    """Per-byte log-likelihood of every sequence from its summed NLL."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return -nll_sums / np.maximum(n_bytes, 1)


def pair_margins(expert_set: ExpertSet, nll_sums: np.ndarray) -> PairMargins:
    """Margins of every negative against the expert solution of its row (``nll_sums`` per sequence)."""
    table = expert_set.table
    score = per_byte_loglik(nll_sums, table.n_bytes)
    expert_of = {int(table.record_index[i]): i for i in np.flatnonzero(table.kind == EXPERT)}
    negatives = [i for i in np.flatnonzero(table.kind == NEGATIVE) if int(table.record_index[i]) in expert_of]
    margins = np.array([score[expert_of[int(table.record_index[i])]] - score[i] for i in negatives])
    return PairMargins(record_index=table.record_index[negatives].astype(np.int64),
                       category=[table.category[i] for i in negatives], margin=margins)


def pair_metrics(expert_set: ExpertSet, pairs: PairMargins) -> dict[str, float]:
    """``pair_accuracy`` and ``pair_margin`` per group (all, task), overall and per flaw category."""
    if len(pairs.margin) == 0:
        return {}
    tasks = np.array([expert_set.records[r].task for r in pairs.record_index])
    categories = np.array(pairs.category)
    out: dict[str, float] = {}
    for group in ["all", *sorted(set(tasks))]:
        in_group = np.ones(len(tasks), bool) if group == "all" else tasks == group
        for category in [None, *sorted(set(categories[in_group]))]:
            rows = in_group if category is None else in_group & (categories == category)
            suffix = "" if category is None else f".{category}"
            out[metric_name(group, "pair_accuracy" + suffix)] = float((pairs.margin[rows] > 0).mean())
            out[metric_name(group, "pair_margin" + suffix)] = float(pairs.margin[rows].mean())
    return out
