"""``ProbeTrainer``: the stateful probe the monitor holds across checkpoints (``docs/methods.md`` §3).

At every anchor (a checkpoint with real generation + scoring of the probe questions)::

    add_anchor(step, features, labels, tasks)
        1. score the probe trained on the earlier anchors against this checkpoint's held-out questions
           (earlier predicts later: the honest figure, made before the new labels are seen)
        2. pool (features, label) rows of every anchor so far and retrain on the training questions
        3. score the new probe on this checkpoint's held-out questions

and at any checkpoint ``predict(step, features, tasks)`` gives P(solve) per question and pass@1 per task.

Held-out questions (``heldout_fraction``, fixed per question id) are never trained on, at any anchor.
Labels are soft pass@1 c/n weighted by n. Anchors must arrive in increasing step order; after training
resumes from an earlier checkpoint, restore the probe state saved with that checkpoint.

Persistence: :meth:`state_dict` is JSON (config, every anchor's labels, the fitted weights as base64 of
their raw bytes). It does not hold the feature arrays: the trainer keeps each anchor's probe inputs in
memory, and :meth:`load_state_dict` needs every anchor's :class:`CheckpointFeatures` back (the monitor
stores them per checkpoint with :func:`evalcast.probe.features_to_arrays`). Predictions after a reload
equal those before it, bit for bit, and later retraining continues exactly as it would have.

Randomness comes from ``config.seed`` only (``np.random.default_rng``, ``torch.Generator``, hashes);
the global python, numpy and torch RNG streams are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalcast.probe import normalize
from evalcast.probe.calibrate import Calibrator, fit_calibrator
from evalcast.probe.config import ProbeConfig
from evalcast.probe.linear import LinearProbe, fit_logistic
from evalcast.probe.metrics import ALL, ProbeScores, score_by_task
from evalcast.probe.nets import Inputs, NetProbe, fit_net
from evalcast.probe.persist import decode_array, encode_array
from evalcast.probe.reports import AnchorReport, ProbePrediction, ProbeReason
from evalcast.probe.splits import heldout_mask, question_folds
from evalcast.stats.features import CheckpointFeatures

STATE_VERSION = 2


@dataclass(frozen=True)
class _Anchor:
    """One anchor's labelled questions (feature order) and their probe inputs."""

    step: int
    ids: tuple[str, ...]
    n: np.ndarray
    c: np.ndarray
    tasks: tuple[str, ...]
    inputs: Inputs
    heldout: np.ndarray

    def to_state(self) -> dict[str, Any]:
        return {"step": self.step, "ids": list(self.ids), "n": [int(v) for v in self.n],
                "c": [int(v) for v in self.c], "tasks": list(self.tasks)}


@dataclass(frozen=True)
class _Fitted:
    """A trained probe: optional global scaler, model, calibrator."""

    model: LinearProbe | NetProbe
    calibrator: Calibrator
    scaler: normalize.Scaler | None

    def p_solve(self, inputs: Inputs) -> np.ndarray:
        if isinstance(inputs, np.ndarray):
            inputs = inputs if self.scaler is None else self.scaler.apply(inputs)
        elif self.scaler is not None:
            inputs = [self.scaler.apply(t) for t in inputs]
        return self.calibrator.apply(self.model.logits(inputs))


def _take(inputs: Inputs, index: np.ndarray) -> Inputs:
    return inputs[index] if isinstance(inputs, np.ndarray) else [inputs[i] for i in index]


def _width(inputs: Inputs) -> int:
    return int(inputs.shape[1]) if isinstance(inputs, np.ndarray) else int(inputs[0].shape[1])


def _check_label(step: int, question: str, label: tuple[int, int]) -> None:
    n, c = label
    if n != int(n) or c != int(c) or n < 1 or not 0 <= c <= n:
        raise ValueError(f"anchor at step {step}: labels must be integers (n, c) with n >= 1 and 0 <= c <= n; "
                         f"question {question!r} has {label}")


def _concat(parts: list[Inputs]) -> Inputs:
    return np.concatenate(parts) if isinstance(parts[0], np.ndarray) else [t for p in parts for t in p]


class ProbeTrainer:
    """Trains the hidden-state probe on anchor labels and predicts P(solve) at any checkpoint."""

    def __init__(self, config: ProbeConfig = ProbeConfig()) -> None:
        self.config = config
        self._anchors: dict[int, _Anchor] = {}
        self._fitted: _Fitted | None = None
        self.reason: str = ProbeReason.NO_ANCHORS.value
        self.message: str = "no anchor evaluation has labelled the probe questions yet"

    @property
    def steps(self) -> tuple[int, ...]:
        """Steps of the anchors so far."""
        return tuple(sorted(self._anchors))

    @property
    def ready(self) -> bool:
        return self._fitted is not None

    # ---------------------------------------------------------------- inputs
    def _inputs(self, features: CheckpointFeatures) -> Inputs:
        per_checkpoint = self.config.normalization == "checkpoint"
        if self.config.model == "attention":
            return normalize.tokens(features, per_checkpoint)
        return normalize.vectors(features, self.config.layers, self.config.pooling, per_checkpoint,
                                 self.config.project_dim, self.config.seed, self.config.proxy_features)

    def _checked(self, step: int, inputs: Inputs) -> Inputs:
        """``inputs``, once their width is known to match the earlier anchors'."""
        if self._anchors:
            expected, width = _width(next(iter(self._anchors.values())).inputs), _width(inputs)
            if width != expected:
                raise ValueError(f"step {step}: {width} probe inputs per question, the anchors have {expected} "
                                 "(another model width or other layers?)")
        return inputs

    def _anchor(self, step: int, features: CheckpointFeatures, labels: Mapping[str, tuple[int, int]],
                tasks: Mapping[str, str]) -> _Anchor:
        unknown = sorted(set(labels) - set(features.ids))
        if unknown:
            raise ValueError(f"anchor at step {step}: {len(unknown)} labelled question(s) have no features, "
                             f"e.g. {unknown[:3]}")
        positions = np.array([i for i, q in enumerate(features.ids) if q in labels], dtype=np.int64)
        if len(positions) == 0:
            raise ValueError(f"anchor at step {step} labels none of the {len(features.ids)} probe questions")
        ids = tuple(features.ids[i] for i in positions)
        missing = [q for q in ids if q not in tasks]
        if missing:
            raise ValueError(f"anchor at step {step}: no task given for {len(missing)} question(s), e.g. {missing[:3]}")
        for q in ids:
            _check_label(step, q, labels[q])
        n = np.array([labels[q][0] for q in ids], dtype=np.float64)
        c = np.array([labels[q][1] for q in ids], dtype=np.float64)
        inputs = self._checked(step, _take(self._inputs(features), positions))
        return _Anchor(int(step), ids, n, c, tuple(tasks[q] for q in ids), inputs,
                       heldout_mask(ids, self.config.heldout_fraction, self.config.seed))

    # ---------------------------------------------------------------- anchors and training
    def add_anchor(self, step: int, features: CheckpointFeatures, labels: Mapping[str, tuple[int, int]],
                   tasks: Mapping[str, str]) -> AnchorReport:
        """Score the current probe on this anchor's held-out questions, then retrain on every anchor."""
        if self._anchors and step <= max(self._anchors):
            raise ValueError(f"anchor at step {step} arrives after the anchor at step {max(self._anchors)}; anchors "
                             "must come in increasing step order (after a rewind, reload the probe's saved state)")
        anchor = self._anchor(step, features, labels, tasks)
        forward, forward_reason, forward_message = self._score(anchor, "the probe trained on earlier anchors")
        self._anchors[anchor.step] = anchor
        self.reason, self.message = self._retrain()
        if self.reason:
            fit, fit_reason, fit_message = {}, self.reason, self.message
        else:
            fit, fit_reason, score_note = self._score(anchor, "the retrained probe")
            fit_message = "; ".join(m for m in (self.message, score_note) if m)
        heldout = {q for a in self._anchors.values() for q, h in zip(a.ids, a.heldout) if h}
        questions = {q for a in self._anchors.values() for q in a.ids}
        return AnchorReport(step=anchor.step, anchors=self.steps, train_questions=len(questions - heldout),
                            heldout_questions=len(heldout), forward=forward, forward_reason=forward_reason,
                            forward_message=forward_message, fit=fit, fit_reason=fit_reason,
                            fit_message=fit_message)

    def _score(self, anchor: _Anchor, what: str) -> tuple[dict[str, ProbeScores], str, str]:
        if self._fitted is None:
            return {}, ProbeReason.NO_PROBE.value, f"no {what.removeprefix('the ')} to score: {self.message}"
        held = np.flatnonzero(anchor.heldout)
        if len(held) == 0:
            return {}, ProbeReason.NO_HELDOUT.value, (
                f"none of the {len(anchor.ids)} questions labelled at step {anchor.step} is held out "
                f"(heldout_fraction={self.config.heldout_fraction}); {what} cannot be scored honestly")
        p = self._fitted.p_solve(_take(anchor.inputs, held))
        scores = score_by_task(p, anchor.n[held], anchor.c[held], [anchor.tasks[i] for i in held],
                               self.config.ece_bins)
        return scores, "", scores[ALL].note

    def _retrain(self) -> tuple[str, str]:
        """Fit on the training questions of every anchor; ``("", note)`` on success, else a reason."""
        cfg = self.config
        self._fitted = None
        parts = [(a, np.flatnonzero(~a.heldout)) for a in (self._anchors[s] for s in self.steps)]
        ids = [a.ids[i] for a, rows in parts for i in rows]
        n = np.concatenate([a.n[rows] for a, rows in parts])
        c = np.concatenate([a.c[rows] for a, rows in parts])
        questions = set(ids)
        if len(questions) < cfg.min_questions:
            return ProbeReason.TOO_FEW_QUESTIONS.value, (
                f"only {len(questions)} labelled training question(s) over {len(parts)} anchor(s); the probe "
                f"needs at least {cfg.min_questions} (held-out questions are never trained on)")
        solved = {q for q, k in zip(ids, c) if k > 0}
        failed = {q for q, k, m in zip(ids, c, n) if k < m}
        if min(len(solved), len(failed)) < cfg.min_per_class:
            return ProbeReason.SINGLE_CLASS.value, (
                f"{len(solved)} training question(s) were ever solved and {len(failed)} ever failed; the probe "
                f"needs at least {cfg.min_per_class} of each to learn what separates them")
        x = _concat([_take(a.inputs, rows) for a, rows in parts])
        scaler = None
        if cfg.normalization == "global":
            scaler = normalize.Scaler.fit(x if isinstance(x, np.ndarray) else np.concatenate(x))
            x = scaler.apply(x) if isinstance(x, np.ndarray) else [scaler.apply(t) for t in x]
        model: LinearProbe | NetProbe
        if cfg.model == "logistic":
            model, oof = fit_logistic(x, n, c, question_folds(ids, cfg.cv_folds, cfg.seed, c / n), cfg.c_grid)
            calibrator, note = fit_calibrator(cfg.calibration, oof, n, c)
        else:
            folds = question_folds(ids, cfg.net.validation_folds, cfg.seed, c / n)
            model, val, logits = fit_net(cfg.model, x, n, c, folds, cfg.net, cfg.seed)
            calibrator, note = fit_calibrator(cfg.calibration, logits, n[val], c[val])
        self._fitted = _Fitted(model, calibrator, scaler)
        return "", note

    # ---------------------------------------------------------------- prediction
    def predict(self, step: int, features: CheckpointFeatures, tasks: Mapping[str, str]) -> ProbePrediction:
        """P(solve) of every probe question at this checkpoint and the mean per task (nothing without a probe)."""
        missing = [q for q in features.ids if q not in tasks]
        if missing:
            raise ValueError(f"no task given for {len(missing)} probe question(s), e.g. {missing[:3]}")
        task_of = tuple(tasks[q] for q in features.ids)
        if self._fitted is None:
            return ProbePrediction(int(step), tuple(features.ids), task_of, reason=self.reason, message=self.message)
        p = self._fitted.p_solve(self._checked(step, self._inputs(features)))
        names = np.asarray(task_of, dtype=object)
        pass_at_1 = {task: float(p[names == task].mean()) for task in dict.fromkeys(task_of)}
        pass_at_1[ALL] = float(p.mean())
        return ProbePrediction(int(step), tuple(features.ids), task_of, p, pass_at_1)

    # ---------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: config, anchors' labels, fitted weights (not the feature arrays)."""
        fitted = self._fitted
        probe = None if fitted is None else {
            "model": fitted.model.to_state(), "calibrator": fitted.calibrator.to_state(),
            "scaler": None if fitted.scaler is None else {"mean": encode_array(fitted.scaler.mean),
                                                          "scale": encode_array(fitted.scaler.scale)}}
        return {"version": STATE_VERSION, "config": self.config.to_dict(),
                "anchors": [self._anchors[s].to_state() for s in self.steps], "probe": probe,
                "reason": self.reason, "message": self.message}

    def load_state_dict(self, state: Mapping[str, Any],
                        features_by_step: Mapping[int, CheckpointFeatures]) -> None:
        """Restore :meth:`state_dict`; ``features_by_step`` must hold the features of every anchor step
        (``[a["step"] for a in state["anchors"]]``), exactly as they were given to :meth:`add_anchor`."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"probe state version {state.get('version')!r}; this evalcast reads {STATE_VERSION}")
        if state["config"] != self.config.to_dict():
            raise ValueError(f"the probe state was saved with another configuration ({state['config']}); "
                             f"construct ProbeTrainer(ProbeConfig.from_dict(state['config'])) to resume it")
        missing = [a["step"] for a in state["anchors"] if a["step"] not in features_by_step]
        if missing:
            raise ValueError(f"features of anchor step(s) {missing} are needed to resume the probe (later "
                             "retraining pools every anchor); load them from the run store")
        self._anchors = {}
        for a in state["anchors"]:
            labels = {q: (n, c) for q, n, c in zip(a["ids"], a["n"], a["c"])}
            self._anchors[a["step"]] = self._anchor(a["step"], features_by_step[a["step"]], labels,
                                                    dict(zip(a["ids"], a["tasks"])))
        self._fitted = None if state["probe"] is None else self._load_fitted(state["probe"])
        self.reason, self.message = state["reason"], state["message"]

    def _load_fitted(self, probe: Mapping[str, Any]) -> _Fitted:
        model_state = probe["model"]
        model = (LinearProbe.from_state(model_state) if model_state["kind"] == "logistic"
                 else NetProbe.from_state(model_state, self.config.net))
        scaler = None if probe["scaler"] is None else normalize.Scaler(decode_array(probe["scaler"]["mean"]),
                                                                        decode_array(probe["scaler"]["scale"]))
        return _Fitted(model, Calibrator.from_state(probe["calibrator"]), scaler)
