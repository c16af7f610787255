"""Per-sequence sums → named proxy metrics per task and domain (``docs/methods.md`` §1).

Every group metric is a ratio of sums over the group's trajectories, Σ_i ρ_i Σ_t w·s / Σ_i ρ_i Σ_t w
(ρ the row weight), never a mean of per-rank or per-row means. Names on the tracker:

* ``evalcast/<group>/<stat>`` — token-uniform weighting (the headline metrics);
* ``evalcast/<group>/<stat>.<weighting>`` — the other frozen weightings;
* ``evalcast/<group>/bpb`` — bits per UTF-8 byte of the expert solutions (comparable across tokenizers);
* ``evalcast/<group>/greedy_match`` — share of solutions whose every token is the model's top-1 under
  teacher forcing; ``answer_match`` the same on the final-answer span.

Groups are ``all``, every task, and ``domain/<prefix>`` for every prefix of every domain path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evalcast.data.expert_set import ExpertSet
from evalcast.data.table import EXPERT
from evalcast.data.weights import DEFAULT_WEIGHTING

PREFIX = "evalcast"
RESERVED_GROUPS = frozenset({"all", "cost", "domain", "run", "alerts"})


def metric_name(group: str, metric: str, weighting: str = DEFAULT_WEIGHTING) -> str:
    suffix = "" if weighting == DEFAULT_WEIGHTING else f".{weighting}"
    return f"{PREFIX}/{group}/{metric}{suffix}"


HEADLINE = frozenset({"nll", "top1", "log_rank", "bpb", "greedy_match", "pair_accuracy", "acc", "acc_norm",
                      "pass@1_probe", "pass@1_anchor", "forecast_final", "forecast_lo80", "forecast_hi80", "seconds"})


def is_headline(name: str) -> bool:
    """The few metrics worth a console line: per task and overall (no weightings, no domains)."""
    parts = name.split("/")
    return len(parts) == 3 and parts[0] == PREFIX and parts[2] in HEADLINE


def record_groups(task: str, domain: str | None) -> list[str]:
    """The groups a row counts in: ``all``, its task, and every prefix of its domain."""
    groups = ["all", task]
    if domain:
        parts = domain.split("/")
        groups += ["domain/" + "/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    return groups


@dataclass(frozen=True)
class GroupIndex:
    """Which expert sequences belong to which group, with their row weights."""

    members: dict[str, np.ndarray]
    row_weight: np.ndarray

    @classmethod
    def build(cls, expert_set: ExpertSet) -> GroupIndex:
        table = expert_set.table
        members: dict[str, list[int]] = {}
        for i in np.flatnonzero(table.kind == EXPERT):
            record = expert_set.records[table.record_index[i]]
            if record.task in RESERVED_GROUPS:
                raise ValueError(f"task name {record.task!r} (row {record.id!r}) is reserved; rename the task")
            for group in record_groups(record.task, record.domain):
                members.setdefault(group, []).append(int(i))
        weights = np.array([expert_set.records[r].weight for r in table.record_index], dtype=np.float64)
        return cls(members={g: np.asarray(m) for g, m in members.items()}, row_weight=weights)

    @property
    def groups(self) -> list[str]:
        return list(self.members)


def aggregate(sums: np.ndarray, weight_sums: np.ndarray, tokens: np.ndarray, n_bytes: np.ndarray,
              index: GroupIndex, stat_names: Sequence[str], weighting_names: Sequence[str]) -> dict[str, float]:
    """Flat ``evalcast/<group>/<metric>`` values from per-sequence sums (see module docstring)."""
    stat_at = {name: k for k, name in enumerate(stat_names)}
    token_w = list(weighting_names).index(DEFAULT_WEIGHTING)
    out: dict[str, float] = {}
    for group, rows in index.members.items():
        rho = index.row_weight[rows]
        num = np.einsum("i,iws->ws", rho, sums[rows])
        den = rho @ weight_sums[rows]
        for w, weighting in enumerate(weighting_names):
            for stat, k in stat_at.items():
                out[metric_name(group, stat, weighting)] = _ratio(num[w, k], den[w])
        nll_sum = rho @ sums[rows, token_w, stat_at["nll"]]
        out[metric_name(group, "bpb")] = _ratio(nll_sum, (rho @ n_bytes[rows]) * math.log(2))
        out[metric_name(group, "greedy_match")] = _share(sums[rows, token_w, stat_at["top1"]],
                                                         tokens[rows], rho)
        if "answer" in weighting_names:
            a = list(weighting_names).index("answer")
            has_answer = weight_sums[rows, a] > 0
            out[metric_name(group, "answer_match")] = _share(sums[rows, a, stat_at["top1"]][has_answer],
                                                             weight_sums[rows, a][has_answer], rho[has_answer])
    return out


def per_sequence_means(sums: np.ndarray, weight_sums: np.ndarray, weighting: int = 0) -> np.ndarray:
    """``[n_seq, n_stats]`` token-averaged statistics per sequence (NaN where nothing was scored)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[:, weighting, :] / weight_sums[:, weighting, None]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def _share(hits: np.ndarray, totals: np.ndarray, rho: np.ndarray) -> float:
    """ρ-weighted share of sequences with every scored token a hit."""
    if len(totals) == 0 or rho.sum() <= 0:
        return float("nan")
    complete = np.isclose(hits, totals) & (totals > 0)
    return float(rho @ complete / rho.sum())
