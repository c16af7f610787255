"""Scorers: is a completion correct for its record? Malformed inputs give a counted reason, never a crash.

Reasons are short categories meant to be counted (``correct``, ``wrong answer``, ``no answer extracted``,
``unparseable number``, ``no reference answer``, ``passed``, ``test failed``, ``timeout``, ``blocked: network``
...); ``detail`` carries the specifics.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from evalcast.data.formatting import PromptConfig, render_prompt
from evalcast.data.records import ROW_PATTERN, ExpertRecord
from evalcast.generate.sandbox import SandboxConfig, SandboxResult, run_programs

#: GSM8K's final-answer line, ``#### 42``, anywhere in a multi-line completion.
GSM8K_PATTERN = r"####[ \t]*([^\n]*?)[ \t\r]*$"
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


@dataclass(frozen=True)
class ScoreResult:
    """One completion's verdict: ``reason`` is a countable category, ``extracted`` the answer found."""

    correct: bool
    reason: str
    extracted: str | None = None
    detail: str = ""


class Scorer(ABC):
    """Scores completions; subclasses that can work in parallel override :meth:`score_many`."""

    @abstractmethod
    def score(self, record: ExpertRecord, completion: str) -> ScoreResult:
        """Score one completion of ``record``."""

    def score_many(self, items: Sequence[tuple[ExpertRecord, str]], *, progress: bool = False) -> list[ScoreResult]:
        """Score ``(record, completion)`` pairs, in order."""
        return [self.score(record, completion) for record, completion in items]


def extract_answer(text: str, patterns: Sequence[str], which: Literal["first", "last"] = "first") -> str | None:
    """The answer in ``text``: group 1 (or the whole match) of the first pattern that matches, taking its
    first or last match; with no patterns, the whole text. ``None`` when no pattern matches."""
    if not patterns:
        return text
    for pattern in patterns:
        matches = list(re.finditer(pattern, text, re.MULTILINE))
        if matches:
            match = matches[0] if which == "first" else matches[-1]
            return match.group(1) if match.re.groups else match.group(0)
    return None


def normalize_answer(text: str, *, strip: bool = True, ignore_case: bool = True, remove_commas: bool = True,
                     strip_period: bool = True) -> str:
    """Normalise an answer for exact match: whitespace, case, thousands commas, one trailing period."""
    if strip:
        text = text.strip()
    if strip_period and text.endswith("."):
        text = text[:-1].rstrip() if strip else text[:-1]
    if remove_commas:
        text = _THOUSANDS.sub("", text)
    return text.casefold() if ignore_case else text


def parse_number(text: str) -> float | None:
    """A number from an answer string (``-1,234.5``, ``$12``, ``50%``, ``3/4``, ``1e3``); ``None`` if it is none."""
    text = _THOUSANDS.sub("", text.strip().replace("\u2212", "-")).removeprefix("$").rstrip(".%").strip()
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _patterns(scorer: ExactMatchScorer | NumericScorer, record: ExpertRecord) -> tuple[str, ...]:
    """The row's own ``meta["answer_pattern"]`` when it has one (and ``row_patterns``), else the scorer's."""
    row = record.meta.get(ROW_PATTERN) if scorer.row_patterns else None
    return (row,) if isinstance(row, str) else scorer.patterns


def _check_patterns(patterns: Sequence[str], owner: str) -> None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{owner}: invalid answer pattern {pattern!r}: {exc}") from None


@dataclass(frozen=True)
class ExactMatchScorer(Scorer):
    """Extract the answer with ``patterns`` and compare it to ``record.answer`` after normalisation.

    ``patterns=()`` compares the whole completion (lm-eval's ``exact_match``; with ``strip=False,
    remove_commas=False, strip_period=False`` it is the same comparison).
    """

    patterns: tuple[str, ...] = (GSM8K_PATTERN,)
    which: Literal["first", "last"] = "first"
    strip: bool = True
    ignore_case: bool = True
    remove_commas: bool = True
    strip_period: bool = True
    row_patterns: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(self.patterns))
        _check_patterns(self.patterns, "ExactMatchScorer")

    def score(self, record: ExpertRecord, completion: str) -> ScoreResult:
        if record.answer is None:
            return ScoreResult(False, "no reference answer", None, f"record {record.id!r} has no answer")
        raw = extract_answer(completion, _patterns(self, record), self.which)
        norm = dict(strip=self.strip, ignore_case=self.ignore_case, remove_commas=self.remove_commas,
                    strip_period=self.strip_period)
        got = None if raw is None else normalize_answer(raw, **norm)
        if not got:
            return ScoreResult(False, "no answer extracted", raw)
        correct = got == normalize_answer(record.answer, **norm)
        return ScoreResult(correct, "correct" if correct else "wrong answer", raw)


@dataclass(frozen=True)
class NumericScorer(Scorer):
    """Extract a number with ``patterns`` (or the row's ``meta["answer_pattern"]``) and compare it to
    ``record.answer`` within tolerances."""

    patterns: tuple[str, ...] = (GSM8K_PATTERN,)
    which: Literal["first", "last"] = "first"
    abs_tol: float = 1e-6
    rel_tol: float = 0.0
    row_patterns: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(self.patterns))
        _check_patterns(self.patterns, "NumericScorer")
        if self.abs_tol < 0 or self.rel_tol < 0:
            raise ValueError(f"NumericScorer tolerances must be >= 0, got abs_tol={self.abs_tol}, "
                             f"rel_tol={self.rel_tol}")

    def score(self, record: ExpertRecord, completion: str) -> ScoreResult:
        if record.answer is None:
            return ScoreResult(False, "no reference answer", None, f"record {record.id!r} has no answer")
        want = parse_number(record.answer)
        if want is None:
            return ScoreResult(False, "reference not numeric", None, f"record {record.id!r}: {record.answer!r}")
        raw = extract_answer(completion, _patterns(self, record), self.which)
        if raw is None or not raw.strip():
            return ScoreResult(False, "no answer extracted", raw)
        got = parse_number(raw)
        if got is None:
            return ScoreResult(False, "unparseable number", raw)
        correct = math.isclose(got, want, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        return ScoreResult(correct, "correct" if correct else "wrong answer", raw)


@dataclass(frozen=True)
class CodeExecutionScorer(Scorer):
    """HumanEval-style: run prompt + completion + ``meta["test"]`` + ``check(<entry_point>)`` in the sandbox.

    With ``include_prompt=False`` the completion must be the whole program (chat answers).
    """

    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    include_prompt: bool = True
    prompt_format: PromptConfig = field(default_factory=PromptConfig)

    def __post_init__(self) -> None:
        if self.include_prompt and self.prompt_format.chat_template:
            raise ValueError("a chat-rendered prompt is not code: use CodeExecutionScorer(include_prompt=False)")

    def program(self, record: ExpertRecord, completion: str) -> str | ScoreResult:
        """The program to run, or the reason it cannot be built."""
        test, entry = record.meta.get("test"), record.meta.get("entry_point")
        if not isinstance(test, str) or not test.strip():
            return ScoreResult(False, "no test", None, f"record {record.id!r} has no meta['test']")
        if not isinstance(entry, str) or not entry.isidentifier():
            return ScoreResult(False, "no entry point", None, f"record {record.id!r}: meta['entry_point']={entry!r}")
        head = render_prompt(record.prompt, None, self.prompt_format) if self.include_prompt else ""
        return f"{head}{completion}\n\n{test}\n\ncheck({entry})\n"

    def score(self, record: ExpertRecord, completion: str) -> ScoreResult:
        return self.score_many([(record, completion)])[0]

    def score_many(self, items: Sequence[tuple[ExpertRecord, str]], *, progress: bool = False) -> list[ScoreResult]:
        built = [self.program(record, completion) for record, completion in items]
        programs = [p for p in built if isinstance(p, str)]
        runs = iter(run_programs(programs, self.sandbox, progress=progress))
        return [p if isinstance(p, ScoreResult) else _from_run(next(runs)) for p in built]


def _from_run(run: SandboxResult) -> ScoreResult:
    return ScoreResult(run.passed, run.reason, None, run.detail)


def is_code_record(record: ExpertRecord) -> bool:
    """Whether a record carries code-execution data (``meta["test"]`` or ``meta["entry_point"]``)."""
    return "test" in record.meta or "entry_point" in record.meta
