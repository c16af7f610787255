"""Multiple-choice metrics from the teacher-forced pass (``docs/methods.md``, multiple choice).

Every choice k of a question is scored as the continuation ``delimiter + choice`` of the prompt; its
log-likelihood is ℓ_k = Σ_t log p(token_t | prompt, earlier tokens), summed over the continuation's
tokens, from the same per-sequence sums as the proxies. Per question:

* ``acc``: argmax_k ℓ_k is the gold choice (lm-eval's ``acc``; ties go to the first index, as ``np.argmax``);
* ``acc_norm``: argmax_k ℓ_k / len(choice_k) in characters (lm-eval's ``acc_norm``, choice text
  without the delimiter); ``acc_bytes``: the same over UTF-8 bytes (lm-eval's ``acc_bytes``);
* for each normalisation n ∈ {sum, per token of the continuation, per byte of the choice} (suffix ``""``,
  ``_per_token``, ``_per_byte``) of the score s_k = ℓ_k / n_k, DataDecide's continuous proxies
  ``mc_prob`` = exp(s_gold) / Σ_k exp(s_k) (probability of the correct choice, normalised by the sum
  over choices) and ``mc_margin`` = s_gold − max_{k≠gold} s_k (margin to the best wrong choice).

Group values are ρ-weighted means over the group's questions (ρ the row weight); ``mc_chance`` is the
mean of 1/K, the floor of accuracy that forecasts use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from evalcast.data.expert_set import ExpertSet
from evalcast.data.table import EXPERT
from evalcast.proxy.aggregate import GroupIndex, metric_name

ACCURACIES = ("acc", "acc_norm", "acc_bytes")
NORMALISATIONS = {"": "sum", "_per_token": "tokens", "_per_byte": "bytes"}
CHOICE_PROXIES = tuple(f"mc_{name}{suffix}" for name in ("prob", "margin") for suffix in NORMALISATIONS)


@dataclass(frozen=True)
class ChoiceScores:
    """Per multiple-choice question (rows) and choice (columns, padded with NaN beyond K).

    ``record_index``: the question's row of the expert set; ``gold``: the correct index; ``loglik``:
    summed log-likelihood ℓ_k of each continuation; ``tokens``: its scored tokens; ``bytes`` and ``chars``:
    UTF-8 bytes and characters of the choice text without the delimiter (lm-eval's lengths).
    """

    record_index: np.ndarray
    gold: np.ndarray
    loglik: np.ndarray
    tokens: np.ndarray
    bytes: np.ndarray
    chars: np.ndarray

    @property
    def n_choices(self) -> np.ndarray:
        return np.isfinite(self.loglik).sum(1)

    def predicted(self, lengths: np.ndarray | None = None) -> np.ndarray:
        """argmax_k ℓ_k (or ℓ_k / lengths_k), first index on ties; padding never wins."""
        score = self.loglik if lengths is None else self.loglik / lengths
        return np.argmax(np.where(np.isfinite(score), score, -np.inf), axis=1)

    def correct(self) -> dict[str, np.ndarray]:
        """``acc``, ``acc_norm`` and ``acc_bytes`` per question (1.0 or 0.0)."""
        return {name: (self.predicted(lengths) == self.gold).astype(float)
                for name, lengths in zip(ACCURACIES, (None, self.chars, self.bytes))}

    def proxies(self) -> dict[str, np.ndarray]:
        """``mc_prob`` and ``mc_margin`` per question, for every normalisation."""
        out: dict[str, np.ndarray] = {}
        rows = np.arange(len(self.gold))
        for suffix, by in NORMALISATIONS.items():
            score = self.loglik if by == "sum" else self.loglik / getattr(self, by)
            finite = np.where(np.isfinite(score), score, -np.inf)
            top = finite.max(axis=1, keepdims=True)
            log_total = top[:, 0] + np.log(np.exp(finite - top).sum(axis=1))
            gold = score[rows, self.gold]
            wrong = finite.copy()
            wrong[rows, self.gold] = -np.inf
            out[f"mc_prob{suffix}"] = np.exp(gold - log_total)
            out[f"mc_margin{suffix}"] = gold - wrong.max(axis=1)
        return out


def choice_scores(expert_set: ExpertSet, nll_sums: np.ndarray, tokens: np.ndarray) -> ChoiceScores | None:
    """Per-question choice scores from per-sequence summed NLL and scored-token counts (``None`` without
    multiple-choice rows)."""
    table = expert_set.table
    seqs = np.flatnonzero(table.choice >= 0)
    if not len(seqs):
        return None
    questions = np.unique(table.record_index[seqs])
    row_of = {int(r): q for q, r in enumerate(questions)}
    width = max(len(expert_set.records[r].choices) for r in questions)
    shape = (len(questions), width)
    loglik, n_tok, n_bytes, n_chars = (np.full(shape, np.nan) for _ in range(4))
    for i in seqs:
        q, k = row_of[int(table.record_index[i])], int(table.choice[i])
        text = expert_set.records[int(table.record_index[i])].choices[k]
        loglik[q, k], n_tok[q, k], n_bytes[q, k], n_chars[q, k] = -nll_sums[i], tokens[i], len(text.encode()), len(text)
    gold = np.array([expert_set.records[r].gold for r in questions], dtype=np.int64)
    return ChoiceScores(record_index=questions.astype(np.int64), gold=gold, loglik=loglik, tokens=n_tok,
                        bytes=n_bytes, chars=n_chars)


@dataclass(frozen=True)
class ChoiceGroup:
    """A group whose every question is multiple choice: its question ids and accuracy floor (mean 1/K)."""

    ids: tuple[str, ...]
    chance: float


def choice_groups(expert_set: ExpertSet, groups: GroupIndex) -> dict[str, ChoiceGroup]:
    """The groups made only of multiple-choice questions: their accuracy is measured exactly at every save."""
    table = expert_set.table
    out = {}
    for group, members in groups.members.items():
        records = [expert_set.records[int(table.record_index[i])] for i in members if table.kind[i] == EXPERT]
        if records and all(r.is_choice for r in records):
            out[group] = ChoiceGroup(ids=tuple(r.id for r in records),
                                     chance=float(np.mean([1.0 / len(r.choices) for r in records])))
    return out


def choice_metrics(expert_set: ExpertSet, scores: ChoiceScores | None, groups: GroupIndex) -> dict[str, float]:
    """``acc``, ``acc_norm``, ``acc_bytes``, the continuous proxies and ``mc_chance`` per group."""
    if scores is None:
        return {}
    table = expert_set.table
    position = {int(r): q for q, r in enumerate(scores.record_index)}
    per_question: Mapping[str, np.ndarray] = {**scores.correct(), **scores.proxies(),
                                              "mc_chance": 1.0 / scores.n_choices}
    out: dict[str, float] = {}
    for group, members in groups.members.items():
        rows = [position[int(table.record_index[i])] for i in members if int(table.record_index[i]) in position]
        if not rows:
            continue
        rho = groups.row_weight[[int(i) for i in members if int(table.record_index[i]) in position]]
        if rho.sum() <= 0:
            continue
        for name, values in per_question.items():
            out[metric_name(group, name)] = float(rho @ values[rows] / rho.sum())
    return out
