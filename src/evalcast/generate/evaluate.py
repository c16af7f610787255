"""Generative evaluation of records: generate, score, and summarise per question and per task.

Per-question results are the probe's labels (pass@1 = c/n), so they are plain JSON. On several ranks,
run :func:`evaluate_generative` on each rank's shard, gather the ``QuestionResult`` JSON, and call
:func:`summarize_tasks` on the union.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evalcast.data.formatting import render_prompt
from evalcast.data.records import ExpertRecord
from evalcast.generate.decode import DecodeConfig, generate_completions
from evalcast.generate.passk import pass_at_k
from evalcast.generate.sandbox import SandboxConfig
from evalcast.generate.scorers import CodeExecutionScorer, Scorer, ScoreResult
from evalcast.generate.select import ScorerChoice, ScorerSpec


@dataclass(frozen=True)
class QuestionResult:
    """One question's ``n`` completions and their verdicts."""

    id: str
    task: str
    n: int
    correct_count: int
    pass_at_1: float
    completions: tuple[str, ...]
    reasons: tuple[str, ...]
    extracted: tuple[str | None, ...]
    correct: tuple[bool, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "n": self.n, "correct_count": self.correct_count,
                "pass_at_1": self.pass_at_1, "completions": list(self.completions), "reasons": list(self.reasons),
                "extracted": list(self.extracted), "correct": list(self.correct)}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> QuestionResult:
        return cls(id=str(row["id"]), task=str(row["task"]), n=int(row["n"]), correct_count=int(row["correct_count"]),
                   pass_at_1=float(row["pass_at_1"]), completions=tuple(row["completions"]),
                   reasons=tuple(row["reasons"]), extracted=tuple(row["extracted"]),
                   correct=tuple(bool(c) for c in row["correct"]))


@dataclass(frozen=True)
class TaskSummary:
    """Per-task pass@k (mean over questions of the unbiased estimator) and outcome counts over samples."""

    task: str
    questions: int
    samples: int
    pass_at_k: Mapping[int, float]
    outcomes: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "questions": self.questions, "samples": self.samples,
                **{f"pass@{k}": v for k, v in self.pass_at_k.items()}, "outcomes": dict(self.outcomes)}


@dataclass(frozen=True)
class GenerativeResult:
    """Everything one generative evaluation produced."""

    questions: tuple[QuestionResult, ...]
    tasks: Mapping[str, TaskSummary]
    outcomes: Mapping[str, int]
    tokens_generated: int
    wall_s: float
    generate_s: float
    score_s: float
    config: DecodeConfig

    @property
    def pass_at_1(self) -> float:
        """Mean pass@1 over all questions."""
        return sum(q.pass_at_1 for q in self.questions) / len(self.questions)

    def to_json(self) -> dict[str, Any]:
        return {"pass@1": self.pass_at_1, "tasks": {t: s.to_json() for t, s in self.tasks.items()},
                "outcomes": dict(self.outcomes), "tokens_generated": self.tokens_generated,
                "wall_s": self.wall_s, "generate_s": self.generate_s, "score_s": self.score_s,
                "config": dataclasses.asdict(self.config), "questions": [q.to_json() for q in self.questions]}


def summarize_tasks(questions: Iterable[QuestionResult], ks: Sequence[int] = (1,)) -> dict[str, TaskSummary]:
    """Per-task summaries, tasks in first-seen order; pass@k only for k no larger than every question's n."""
    by_task: dict[str, list[QuestionResult]] = {}
    for q in questions:
        by_task.setdefault(q.task, []).append(q)
    out = {}
    for task, qs in by_task.items():
        usable = [k for k in ks if k <= min(q.n for q in qs)]
        out[task] = TaskSummary(
            task=task, questions=len(qs), samples=sum(q.n for q in qs),
            pass_at_k={k: sum(pass_at_k(q.n, q.correct_count, k) for q in qs) / len(qs) for k in usable},
            outcomes=dict(Counter(r for q in qs for r in q.reasons)))
    return out


def evaluate_generative(model: Any, tokenizer: Any, records: Sequence[ExpertRecord], *,
                        config: DecodeConfig = DecodeConfig(), scorer: ScorerSpec | None = None,
                        sandbox: SandboxConfig | None = None) -> GenerativeResult:
    """Generate ``config.n`` completions per record and score them.

    ``scorer`` is a scorer, a callable ``(record, completion) -> bool | ScoreResult`` or a mapping task ->
    scorer (see :mod:`evalcast.generate.select`); records it does not cover get the default: the code
    sandbox (``sandbox`` limits) for records with ``meta["test"]``/``meta["entry_point"]``, else exact
    match on ``record.answer``. The model's train/eval modes and the caller's RNG streams are left as
    they were.
    """
    if not records:
        raise ValueError("evaluate_generative needs at least one record")
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ValueError(f"duplicate record id {record.id!r}: per-question results are keyed by id")
        seen.add(record.id)
    start = time.perf_counter()
    prompts = [render_prompt(r.prompt, tokenizer, config.prompt_format) for r in records]
    generations = generate_completions(model, tokenizer, prompts, config)
    generated = time.perf_counter()

    choose = ScorerChoice(scorer, code=CodeExecutionScorer(
        sandbox or SandboxConfig(), include_prompt=not config.prompt_format.chat_template,
        prompt_format=config.prompt_format))
    groups: dict[int, tuple[Scorer, list[tuple[int, int]]]] = {}
    for q, record in enumerate(records):
        chosen = choose(record)
        groups.setdefault(id(chosen), (chosen, []))[1].extend((q, s) for s in range(config.n))
    verdicts: dict[tuple[int, int], ScoreResult] = {}
    for chosen, keys in groups.values():
        items = [(records[q], generations[q].texts[s]) for q, s in keys]
        verdicts.update(zip(keys, chosen.score_many(items, progress=config.progress)))
    scored = time.perf_counter()

    questions = []
    for q, (record, generation) in enumerate(zip(records, generations)):
        results = [verdicts[q, s] for s in range(config.n)]
        count = sum(r.correct for r in results)
        questions.append(QuestionResult(
            id=record.id, task=record.task, n=config.n, correct_count=count, pass_at_1=count / config.n,
            completions=generation.texts, reasons=tuple(r.reason for r in results),
            extracted=tuple(r.extracted for r in results), correct=tuple(r.correct for r in results)))
    return GenerativeResult(
        questions=tuple(questions), tasks=summarize_tasks(questions, config.ks),
        outcomes=dict(Counter(r for q in questions for r in q.reasons)),
        tokens_generated=sum(sum(g.tokens) for g in generations), wall_s=scored - start,
        generate_s=generated - start, score_s=scored - generated, config=config)
