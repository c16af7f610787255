"""Expert-set rows: the record type, field mapping and validation (files: :mod:`evalcast.data.files`).

A row holds one question and its expert-written solution. Loaders read JSONL, JSON, Parquet or a local
Hugging Face ``datasets`` object, rename fields through a mapping (GSM8K: ``{"prompt": "question",
"solution": "answer"}``) and validate every row, naming file, line and field on error.

A multiple-choice row (lm-eval / MMLU layout) has ``choices`` (a list of strings, or ARC's
``{"text": [...], "label": [...]}``) and the index of the correct one in ``gold`` (or, when there is no
``gold`` field, in ``answer``: MMLU's integer, or a label such as ARC's ``"B"``); it needs no solution:
the correct choice is its expert continuation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evalcast.data.choices import choice_problem, parse_choices
from evalcast.validation import check_config

OnInvalid = Literal["error", "skip"]

#: Final-answer convention of GSM8K-style solutions: ``... #### 42``.
GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$")

#: ``meta`` key of a row's own answer regex (group 1, or the whole match, is the answer); the default and
#: the exact-match / numeric scorers read the row's answer with it.
ROW_PATTERN = "answer_pattern"

FIELDS = ("prompt", "solution", "answer", "task", "domain", "id", "negatives", "weight", "meta", "choices", "gold")


class ExpertSetError(ValueError):
    """A malformed expert-set row: says where (file, line, field), what is wrong and what to do."""

    def __init__(self, message: str, *, source: str = "<records>", line: int | None = None,
                 field_name: str | None = None, hint: str = "") -> None:
        self.source, self.line, self.field_name = source, line, field_name
        where = source if line is None else f"{source}:{line}"
        what = f"field '{field_name}': " if field_name else ""
        text = f"{where}: {what}{message}"
        super().__init__(f"{text}. {hint}".rstrip() if hint else text)


@dataclass(frozen=True)
class Negative:
    """A flawed response to the same prompt, scored against the expert solution (pairs)."""

    text: str
    category: str = "flawed"


@dataclass(frozen=True)
class ExpertRecord:
    """One expert trajectory.

    ``prompt`` is the question as the model sees it before the solution; ``solution`` the expert
    trajectory that is scored token by token. ``domain`` is a slash path (``math/algebra``) whose
    every prefix gets its own aggregate. ``meta`` carries scorer data (tests, entry points).

    A multiple-choice row has ``choices`` (K >= 2 non-empty strings) and ``gold``, the index of the
    correct one; its ``solution`` is ``choices[gold]`` (pass ``""`` or build it with
    :meth:`multiple_choice`) and its ``answer`` the correct choice.
    """

    prompt: str
    solution: str
    answer: str | None = None
    task: str = "default"
    domain: str | None = None
    id: str = ""
    negatives: tuple[Negative, ...] = ()
    weight: float = 1.0
    meta: Mapping[str, Any] = field(default_factory=dict)
    choices: tuple[str, ...] = ()
    gold: int | None = None
    source: str = field(default="", compare=False)
    """Where the row was read (``file:line``), for messages; not part of the row's content."""

    def __post_init__(self) -> None:
        if self.choices or self.gold is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
            problem = choice_problem(self.choices, self.gold)
            if problem:
                raise ValueError(f"ExpertRecord {self.id or self.prompt[:40]!r}: {problem}")
            if self.negatives:
                raise ValueError(f"ExpertRecord {self.id or self.prompt[:40]!r}: a multiple-choice row takes no "
                                 "negatives (its wrong choices are scored against the correct one)")
            correct = self.choices[self.gold]  # type: ignore[index]
            if self.solution not in ("", correct):
                raise ValueError(f"ExpertRecord {self.id or self.prompt[:40]!r}: solution {self.solution[:40]!r} is "
                                 f"not the correct choice {correct[:40]!r}; leave solution empty for multiple choice")
            object.__setattr__(self, "solution", correct)
            object.__setattr__(self, "answer", correct)
        if self.answer is None:
            match = GSM8K_ANSWER.search(self.solution)
            object.__setattr__(self, "answer", match.group(1) if match else None)

    @classmethod
    def multiple_choice(cls, prompt: str, choices: Sequence[str], gold: int, **fields: Any) -> ExpertRecord:
        """A multiple-choice row: ``prompt``, the K choices and the index of the correct one."""
        return cls(prompt=prompt, solution="", choices=tuple(choices), gold=gold, **fields)

    @property
    def is_choice(self) -> bool:
        """Whether the row is a multiple-choice question."""
        return bool(self.choices)

    def to_json(self) -> dict[str, Any]:
        """The row as written to an expert-set JSONL file."""
        row: dict[str, Any] = {"id": self.id, "task": self.task, "prompt": self.prompt}
        if self.is_choice:
            row["choices"], row["gold"] = list(self.choices), self.gold
        else:
            row["solution"] = self.solution
        if self.answer is not None and not self.is_choice:
            row["answer"] = self.answer
        if self.domain is not None:
            row["domain"] = self.domain
        if self.negatives:
            row["negatives"] = [{"text": n.text, "category": n.category} for n in self.negatives]
        if self.weight != 1.0:
            row["weight"] = self.weight
        if self.meta:
            row["meta"] = dict(self.meta)
        return row


@dataclass(frozen=True)
class FieldMap:
    """Maps evalcast field names to the names used in a file, e.g. ``FieldMap(prompt="question")``; an
    empty name leaves that optional field unread."""

    prompt: str = "prompt"
    solution: str = "solution"
    answer: str = "answer"
    task: str = "task"
    domain: str = "domain"
    id: str = "id"
    negatives: str = "negatives"
    weight: str = "weight"
    meta: str = "meta"
    choices: str = "choices"
    gold: str = "gold"

    def __post_init__(self) -> None:
        check_config(self)

    @classmethod
    def of(cls, fields: FieldMap | Mapping[str, str] | None) -> FieldMap:
        if fields is None or isinstance(fields, FieldMap):
            return fields or cls()
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown expert-set field(s) {sorted(unknown)} in the field mapping; "
                             f"known fields: {', '.join(FIELDS)}")
        # A file key taken by an explicit mapping is no longer read under its default meaning:
        # with {"solution": "answer"} (GSM8K), "answer" is the solution, and the answer is derived.
        taken = set(fields.values())
        disabled = {name: "" for name in FIELDS if name not in fields and name in taken}
        return cls(**{**disabled, **fields})


def parse_record(row: Mapping[str, Any], fields: FieldMap, *, source: str, line: int,
                 default_task: str = "default") -> ExpertRecord:
    """Validate one raw row and build an :class:`ExpertRecord` (raises :class:`ExpertSetError`)."""

    def err(name: str, message: str, hint: str = "") -> ExpertSetError:
        return ExpertSetError(message, source=source, line=line, field_name=getattr(fields, name), hint=hint)

    if not isinstance(row, Mapping):
        raise ExpertSetError(f"a row must be a JSON object, got {type(row).__name__}", source=source, line=line)
    choices, gold = parse_choices(row, fields, err)
    if choices and fields.negatives and row.get(fields.negatives):
        raise err("negatives", "a multiple-choice row takes no negatives",
                  "Its wrong choices are scored against the correct one; drop the field.")
    texts = {"solution": ""}
    for name in ("prompt",) if choices else ("prompt", "solution"):
        key = getattr(fields, name)
        if key not in row or row[key] is None:
            present = ", ".join(sorted(map(str, row))) or "none"
            raise err(name, "missing", f"Fields present: {present}. Map names with fields={{'{name}': ...}}.")
        value = row[key]
        if not isinstance(value, str):
            raise err(name, f"must be a string, got {type(value).__name__}")
        texts[name] = value
    for name, value in texts.items():
        if not _unicode(value):
            raise err(name, "not valid Unicode (a lone surrogate such as \\ud800)", "Fix the text's encoding.")
    if not choices and not texts["solution"].strip():
        raise err("solution", "empty solution", "Every row needs a non-empty expert trajectory.")
    if not texts["prompt"].strip():
        raise err("prompt", "empty prompt")

    answer = None if choices else _optional_str(row, fields.answer, err, "answer")
    task = _optional_str(row, fields.task, err, "task") or default_task
    domain = _optional_str(row, fields.domain, err, "domain")
    if domain is not None:
        domain = domain.strip("/")
        if not domain or any(not part for part in domain.split("/")):
            raise err("domain", f"invalid domain path {row[fields.domain]!r}", "Use slash paths like 'math/algebra'.")
    raw_id = row.get(fields.id)
    record_id = str(raw_id) if raw_id is not None else f"{task}/{line}"
    if not _unicode(record_id):
        raise err("id", "not valid Unicode (a lone surrogate such as \\ud800)")
    weight = row.get(fields.weight, 1.0)
    if weight is None:
        weight = 1.0
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 or weight == float("inf"):
        raise err("weight", f"must be a finite number >= 0, got {weight!r}")
    meta = row.get(fields.meta) or {}
    if not isinstance(meta, Mapping):
        raise err("meta", f"must be an object, got {type(meta).__name__}")
    _check_row_pattern(meta.get(ROW_PATTERN), err)
    return ExpertRecord(prompt=texts["prompt"], solution=texts["solution"], answer=answer, task=task,
                        domain=domain, id=record_id, negatives=_negatives(row.get(fields.negatives), err),
                        weight=float(weight), meta=dict(meta), choices=choices, gold=gold,
                        source=f"{source}:{line}")


def _check_row_pattern(pattern: Any, err: Any) -> None:
    if pattern is None:
        return
    if not isinstance(pattern, str) or not pattern:
        raise err("meta", f"meta['{ROW_PATTERN}'] must be a non-empty regex string, got {pattern!r}")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise err("meta", f"meta['{ROW_PATTERN}']={pattern!r} is not a valid regex: {exc}",
                  "Its group 1 (or the whole match) is the answer, e.g. 'Answer: (\\S+)'.") from None


def _optional_str(row: Mapping[str, Any], key: str, err: Any, name: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name == "answer":
        return str(value)
    if not isinstance(value, str):
        raise err(name, f"must be a string, got {type(value).__name__}")
    if not _unicode(value):
        raise err(name, "not valid Unicode (a lone surrogate such as \\ud800)")
    return value


def _negatives(value: Any, err: Any) -> tuple[Negative, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise err("negatives", f"must be a list, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            text, category = item, "flawed"
        elif isinstance(item, Mapping) and isinstance(item.get("text"), str):
            text, category = item["text"], str(item.get("category") or "flawed")
        else:
            raise err("negatives", f"item {i} must be a string or {{'text': ..., 'category': ...}}")
        if not text.strip():
            raise err("negatives", f"item {i} is empty")
        if not (_unicode(text) and _unicode(category)):
            raise err("negatives", f"item {i} is not valid Unicode (a lone surrogate such as \\ud800)")
        out.append(Negative(text=text, category=category))
    return tuple(out)


def _unicode(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8 (JSON can carry lone surrogates, which tokenizers refuse)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
