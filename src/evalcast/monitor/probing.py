"""Rank 0's side of probe questions: anchor labels, the probe, and what survives a restart.

At an anchor, the labels (per question ``n`` samples, ``c`` correct) and that checkpoint's features are
stored in the run directory, the probe first scores its earlier self on the new labels ("earlier
predicts later"), then retrains. At every checkpoint it predicts P(solve) per question; those
predictions are stored too (they densify the difficulty clusters of the forecasts).

Resume: the probe's state (weights, labels) is in ``state/probe.json`` and the features of every anchor
in ``probe_features/``. When training resumes from an earlier checkpoint than the last anchor, the
probe is rebuilt by replaying the anchors up to that step, so no anchor from a lost future survives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evalcast.data.expert_set import ExpertSet
from evalcast.monitor.local import LocalResult
from evalcast.monitor.run_store import RunStore
from evalcast.probe import ProbeConfig, ProbeTrainer, features_from_arrays, features_to_arrays
from evalcast.proxy.aggregate import metric_name, record_groups
from evalcast.stats.features import CheckpointFeatures

FEATURES, PREDICTIONS, ANCHORS = "probe_features", "probe_predictions", "anchors"


class ProbeQuestions:
    """The probe questions, their anchor labels and the probe trained on them (rank 0)."""

    def __init__(self, experts: ExpertSet, rows: np.ndarray, config: ProbeConfig) -> None:
        self.rows = rows
        records = [experts.records[experts.table.record_index[i]] for i in rows]
        self.ids = [r.id for r in records]
        self.tasks = {r.id: r.task for r in records}
        self.groups = {r.id: record_groups(r.task, r.domain) for r in records}
        self.config = config
        self.trainer = ProbeTrainer(config)

    # ---------------------------------------------------------------- assembling rank results
    def features(self, payloads: Sequence[LocalResult], examples: dict[str, np.ndarray]) -> CheckpointFeatures:
        """Every probe question's features, merged from the ranks' slots, in probe-question order, with
        its own teacher-forced statistics from ``examples`` (the per-example arrays of this checkpoint)."""
        parts = [p for p in payloads if p.feature_slots is not None and len(p.feature_slots)]
        slots = np.concatenate([p.feature_slots for p in parts])
        order = np.argsort(slots)
        if not np.array_equal(slots[order], np.arange(len(self.ids))):
            raise RuntimeError(f"probe features cover {len(set(slots.tolist()))} of {len(self.ids)} questions")
        last = np.concatenate([p.feature_last for p in parts])[order]
        mean = np.concatenate([p.feature_mean for p in parts])[order]
        tokens = None
        if all(p.feature_tokens is not None for p in parts):
            flat = [t for p in parts for t in p.feature_tokens]
            tokens = [flat[i] for i in order]
        return CheckpointFeatures(ids=list(self.ids), layers=parts[0].feature_layers, last=last, mean=mean,
                                  tokens=tokens, proxies=question_proxies(examples, self.ids),
                                  proxy_names=QUESTION_PROXIES)

    @staticmethod
    def anchor_results(payloads: Sequence[LocalResult]) -> list[dict[str, Any]]:
        return [q for p in payloads for q in p.anchor_questions]

    # ---------------------------------------------------------------- one checkpoint
    def observe(self, step: int, features: CheckpointFeatures, anchor: list[dict[str, Any]] | None,
                store: RunStore, keep_features: bool = False) -> tuple[dict[str, float], dict[str, Any],
                                                                       dict[str, float]]:
        """Metrics, the history fields and the per-question P(solve) (empty without a probe) of this
        checkpoint. Features are stored at anchors (and at every checkpoint with ``keep_features``)."""
        metrics: dict[str, float] = {}
        part: dict[str, Any] = {}
        if anchor or keep_features:
            store.save_arrays(step, FEATURES, features_to_arrays(features))
        if anchor:
            labels = {q["id"]: (int(q["n"]), int(q["correct_count"])) for q in anchor}
            metrics.update(anchor_metrics(anchor, self.groups))
            store.save_arrays(step, ANCHORS, {"ids": np.array(list(labels), dtype=str),
                                              "n": np.array([v[0] for v in labels.values()]),
                                              "c": np.array([v[1] for v in labels.values()])})
            report = self.trainer.add_anchor(step, features, labels, self.tasks)
            metrics.update(report.metrics())
            part["anchor"] = {"questions": len(labels), "report": report.to_dict(),
                              "per_question": {q: c / n for q, (n, c) in labels.items()}}
            store.save_state("probe", self.trainer.state_dict())
        prediction = self.trainer.predict(step, features, self.tasks)
        p_solve: dict[str, float] = {}
        if prediction.ok:
            metrics.update(prediction.metrics())
            p = np.asarray(prediction.p_solve, dtype=np.float32)
            store.save_arrays(step, PREDICTIONS, {"ids": np.array(self.ids, dtype=str), "p": p})
            p_solve = dict(zip(self.ids, p.tolist()))
        part["probe"] = {"status": "ok" if prediction.ok else "none", "reason": prediction.reason,
                         "message": prediction.message}
        return metrics, part, p_solve

    # ---------------------------------------------------------------- resume
    def restore(self, store: RunStore, anchor_steps: Sequence[int]) -> None:
        """Rebuild the probe from the run directory, keeping only anchors at ``anchor_steps``."""
        self.trainer = ProbeTrainer(self.config)
        state = store.load_state("probe")
        features = {s: features_from_arrays(a) for s in anchor_steps
                    if (a := store.load_arrays(s, FEATURES)) is not None}
        if state is not None and [a["step"] for a in state["anchors"]] == list(anchor_steps):
            self.trainer.load_state_dict(state, features)
            return
        for step in anchor_steps:  # replay: the saved state holds anchors that a rewind dropped
            labels = store.load_arrays(step, ANCHORS)
            if labels is None or step not in features:
                continue
            self.trainer.add_anchor(step, features[step], {str(q): (int(n), int(c)) for q, n, c in
                                                           zip(labels["ids"], labels["n"], labels["c"])}, self.tasks)
        store.save_state("probe", self.trainer.state_dict())


QUESTION_PROXIES = ("nll", "top1", "log_rank", "entropy", "solved_under_teacher_forcing")


def question_proxies(examples: dict[str, np.ndarray], ids: Sequence[str]) -> np.ndarray:
    """``[n, 5]`` per-question statistics of the expert solution: mean NLL, top-1 share, mean log-rank,
    mean entropy, and whether every token was the model's top-1 (the solution reproduced)."""
    where = {str(q): i for i, q in enumerate(examples["id"].tolist())}
    names = [str(n) for n in examples["stat_names"].tolist()]
    stats = examples["stats"][[where[q] for q in ids]].astype(np.float64)
    columns = [stats[:, names.index(n)] for n in QUESTION_PROXIES[:4]]
    return np.stack([*columns, (columns[1] >= 1.0 - 1e-9).astype(np.float64)], axis=1)


def anchor_metrics(questions: Sequence[dict[str, Any]], groups: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``evalcast/<group>/pass@1_anchor``: mean per-question pass@1 of a real evaluation, for every group
    (``all``, task, domain prefixes) of the questions evaluated."""
    by_group: dict[str, list[float]] = {}
    for q in questions:
        for group in groups[q["id"]]:
            by_group.setdefault(group, []).append(float(q["pass_at_1"]))
    return {metric_name(group, "pass@1_anchor"): float(np.mean(v)) for group, v in by_group.items()}
