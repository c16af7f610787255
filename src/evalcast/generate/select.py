"""Which scorer judges which record: one scorer, a mapping task -> scorer, or any callable.

A *scorer spec* is what ``AnchorConfig(scorer=...)``, :func:`~evalcast.generate.evaluate_generative` and
``evalcast score --scorer`` take:

* a :class:`~evalcast.generate.Scorer` (``ExactMatchScorer(patterns=...)``, ``NumericScorer``,
  ``CodeExecutionScorer``) or any callable ``(record, completion) -> bool | ScoreResult``;
* a mapping ``task -> scorer`` (tasks it does not name keep the default);
* ``None``: the default. A record with ``meta["test"]``/``meta["entry_point"]`` runs in the code sandbox; a
  record with ``meta["answer_pattern"]`` (a regex whose group 1 is the answer) gets exact match with that
  pattern; any other gets exact match on GSM8K's ``#### answer`` line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalcast.data.records import ExpertRecord
from evalcast.generate.scorers import CodeExecutionScorer, ExactMatchScorer, Scorer, ScoreResult, is_code_record

logger = logging.getLogger("evalcast")

ScoreFn = Callable[[ExpertRecord, str], Any]
#: One scorer (or callable) for every record, or one per task name.
ScorerSpec = Scorer | ScoreFn | Mapping[str, Scorer | ScoreFn]


@dataclass(frozen=True)
class CallableScorer(Scorer):
    """A user's function ``(record, completion) -> bool | ScoreResult`` as a :class:`Scorer`.

    A bool becomes ``correct`` / ``wrong answer``; an exception inside the function is counted as
    ``scorer error`` (with the message in ``detail``, and logged once) so one odd completion never loses
    the whole anchor; any other return value is a bug in the function and raises ``TypeError``.
    """

    fn: ScoreFn

    def score(self, record: ExpertRecord, completion: str) -> ScoreResult:
        try:
            out = self.fn(record, completion)
        except Exception as exc:
            if not getattr(self, "_warned", False):
                object.__setattr__(self, "_warned", True)
                logger.warning("evalcast: scorer %r raised on record %r: %r (counted as 'scorer error')",
                               self.fn, record.id, exc)
            return ScoreResult(False, "scorer error", None, f"{type(exc).__name__}: {exc}")
        if isinstance(out, ScoreResult):
            return out
        if isinstance(out, bool) or type(out).__name__ == "bool_":
            correct = bool(out)
            return ScoreResult(correct, "correct" if correct else "wrong answer", None)
        raise TypeError(f"scorer {self.fn!r} returned {out!r} for record {record.id!r}: a scorer returns a bool "
                        "or a ScoreResult")


def as_scorer(scorer: Scorer | ScoreFn) -> Scorer:
    """A :class:`Scorer` from a scorer or a callable ``(record, completion) -> bool | ScoreResult``."""
    if isinstance(scorer, Scorer):
        return scorer
    if callable(scorer):
        return CallableScorer(scorer)
    raise TypeError(f"not a scorer: {scorer!r} (give a Scorer, a callable (record, completion) -> bool | "
                    "ScoreResult, or a mapping task -> one of these)")


def check_scorer_spec(spec: Any, owner: str) -> None:
    """Raise ``ValueError`` unless ``spec`` is a scorer spec (see the module docstring)."""
    if spec is None:
        return
    mapping = isinstance(spec, Mapping)
    for task, scorer in spec.items() if mapping else [("", spec)]:
        if mapping and (not isinstance(task, str) or not task):
            raise ValueError(f"{owner}: scorer mapping keys must be task names, got {task!r}")
        if not (isinstance(scorer, Scorer) or callable(scorer)):
            where = f" for task {task!r}" if task else ""
            raise ValueError(f"{owner}={scorer!r}{where} is not a scorer: give a Scorer (ExactMatchScorer, "
                             "NumericScorer, CodeExecutionScorer), a callable (record, completion) -> bool | "
                             "ScoreResult, or a mapping task -> one of these")


def check_scorer_tasks(spec: Any, tasks: Sequence[str], owner: str) -> None:
    """Raise ``ValueError`` when a scorer mapping names a task the expert set does not have."""
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(tasks))
        if unknown:
            raise ValueError(f"{owner}: scorer given for unknown task(s) {unknown}; the expert set's tasks are "
                             f"{sorted(tasks)}")


class ScorerChoice:
    """Picks the scorer of each record from a spec; built-in defaults are made once and shared."""

    def __init__(self, spec: ScorerSpec | None, *, code: CodeExecutionScorer) -> None:
        check_scorer_spec(spec, "scorer")
        self.code, self.exact = code, ExactMatchScorer()
        self.one: Scorer | None = None
        self.by_task: dict[str, Scorer] = {}
        if isinstance(spec, Mapping):
            self.by_task = {task: as_scorer(s) for task, s in spec.items()}
        elif spec is not None:
            self.one = as_scorer(spec)

    def __call__(self, record: ExpertRecord) -> Scorer:
        chosen = self.one or self.by_task.get(record.task)
        if chosen is not None:
            return chosen
        return self.code if is_code_record(record) else self.exact
