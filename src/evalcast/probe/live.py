"""The probe across a run: anchor labels in, P(solve) per anchor question out, kept in the run directory.

At an anchor, the labels (per question ``n`` samples, ``c`` correct) and that checkpoint's features are
stored in the run directory; the probe first scores its earlier self on the new labels ("earlier
predicts later"), then retrains. At every checkpoint it predicts P(solve) per question; those
predictions are stored too (they densify the difficulty clusters of the forecasts).

Resume: the probe's state (weights, labels) is in ``state/probe.json`` and the features of every anchor
in ``probe_features/``. When training resumes from an earlier checkpoint than the last anchor, the
probe is rebuilt by replaying the anchors up to that step, so no anchor from a lost future survives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evalcast.data.records import ExpertRecord
from evalcast.probe.config import ProbeConfig
from evalcast.probe.persist import features_from_arrays, features_to_arrays
from evalcast.probe.reports import AnchorReport
from evalcast.probe.trainer import ProbeTrainer
from evalcast.proxy.aggregate import metric_name, record_groups
from evalcast.runs.store import ANCHOR_LABELS, FEATURES, PREDICTIONS, RunStore
from evalcast.stats.features import CheckpointFeatures

Labels = Mapping[str, tuple[int, int]]
"""Per anchor question: samples generated ``n`` and how many were correct ``c``."""


@dataclass(frozen=True)
class Observation:
    """What the probe made of one checkpoint: its metrics, its report at an anchor, and P(solve) per
    question (empty when it could not predict; ``reason``/``message`` say why)."""

    metrics: dict[str, float]
    report: AnchorReport | None
    p_solve: dict[str, float]
    reason: str = ""
    message: str = ""


class LiveProbe:
    """The probe trained on a run's anchors, with its questions and their groups (rank 0)."""

    def __init__(self, questions: Sequence[ExpertRecord], config: ProbeConfig) -> None:
        self.ids = [r.id for r in questions]
        self.tasks = {r.id: r.task for r in questions}
        self.groups = {r.id: record_groups(r.task, r.domain) for r in questions}
        self.config = config
        self.trainer = ProbeTrainer(config)

    def observe(self, step: int, features: CheckpointFeatures, labels: Labels | None, store: RunStore,
                keep_features: bool = False) -> Observation:
        """Learn from this checkpoint's anchor labels (if any) and predict. Features are stored at anchors
        (and at every checkpoint with ``keep_features``), labels and predictions always."""
        metrics: dict[str, float] = {}
        report = None
        if labels or keep_features:
            store.save_arrays(step, FEATURES, features_to_arrays(features))
        if labels:
            store.save_arrays(step, ANCHOR_LABELS, {"ids": np.array(list(labels), dtype=str),
                                                    "n": np.array([v[0] for v in labels.values()]),
                                                    "c": np.array([v[1] for v in labels.values()])})
            report = self.trainer.add_anchor(step, features, labels, self.tasks)
            metrics.update(report.metrics())
            store.save_state("probe", self.trainer.state_dict())
        prediction = self.trainer.predict(step, features, self.tasks)
        if not prediction.ok:
            return Observation(metrics, report, {}, prediction.reason, prediction.message)
        metrics.update(prediction.metrics())
        p = np.asarray(prediction.p_solve, dtype=np.float32)
        store.save_arrays(step, PREDICTIONS, {"ids": np.array(self.ids, dtype=str), "p": p})
        return Observation(metrics, report, dict(zip(self.ids, p.tolist())), prediction.reason, prediction.message)

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
            labels = store.load_arrays(step, ANCHOR_LABELS)
            if labels is None or step not in features:
                continue
            self.trainer.add_anchor(step, features[step], {str(q): (int(n), int(c)) for q, n, c in
                                                           zip(labels["ids"], labels["n"], labels["c"])}, self.tasks)
        store.save_state("probe", self.trainer.state_dict())


QUESTION_PROXIES = ("nll", "top1", "log_rank", "entropy", "solved_under_teacher_forcing")


def question_proxies(examples: Mapping[str, np.ndarray], ids: Sequence[str]) -> np.ndarray:
    """``[n, 5]`` per-question statistics of the expert solution: mean NLL, top-1 share, mean log-rank,
    mean entropy, and whether every token was the model's top-1 (the solution reproduced)."""
    where = {str(q): i for i, q in enumerate(examples["id"].tolist())}
    names = [str(n) for n in examples["stat_names"].tolist()]
    stats = examples["stats"][[where[q] for q in ids]].astype(np.float64)
    columns = [stats[:, names.index(n)] for n in QUESTION_PROXIES[:4]]
    return np.stack([*columns, (columns[1] >= 1.0 - 1e-9).astype(np.float64)], axis=1)


def anchor_metrics(pass_at_1: Mapping[str, float], groups: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``evalcast/<group>/pass@1_anchor``: mean per-question pass@1 of a real evaluation, for every group
    (``all``, task, domain prefixes) of the questions evaluated."""
    by_group: dict[str, list[float]] = {}
    for question, p in pass_at_1.items():
        for group in groups[question]:
            by_group.setdefault(group, []).append(float(p))
    return {metric_name(group, "pass@1_anchor"): float(np.mean(v)) for group, v in by_group.items()}
