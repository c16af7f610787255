"""Loaders for the real expert sets kept in ``../shared/data``: GSM8K and HumanEval.

GSM8K calculator annotations (``16 - 3 = <<16-3=13>>13``) are kept by default: that is the solution as
released and as lm-eval's ``gsm8k`` task shows it in its few-shot targets, so proxies computed on it
describe the text models are prompted to imitate there. ``strip_calculator=True`` removes them, for
models prompted with plain chain-of-thought (lm-eval's ``gsm8k-cot`` style), whose generations have none.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from evalcast.data.files import iter_raw_rows
from evalcast.data.records import ExpertRecord, ExpertSetError, FieldMap, parse_record
from evalcast.tasks.negatives import attach_negatives

#: Default locations, relative to the working directory (the repository root).
GSM8K_PATH = Path("../shared/data/gsm8k/test.jsonl")
HUMANEVAL_PATH = Path("../shared/data/humaneval/HumanEval.jsonl.gz")
#: Negative categories that apply to GSM8K solutions (their steps do not end in ``=<n>``).
GSM8K_NEGATIVES = ("wrong_answer", "broken_format")
_CALCULATOR = re.compile(r"<<.*?>>")


def strip_calculator(text: str) -> str:
    """``text`` without GSM8K ``<<expression=result>>`` calculator annotations."""
    return _CALCULATOR.sub("", text)


def _existing(path: str | Path, name: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{name} file not found: {path} (resolved to {path.resolve()}); run from the "
                                f"repository root so that ../shared/data is found, or pass path=...")
    return path


def load_gsm8k(path: str | Path = GSM8K_PATH, *, strip_annotations: bool = False,
               negatives: bool | Sequence[str] = False, seed: int = 0, limit: int | None = None
               ) -> list[ExpertRecord]:
    """GSM8K rows (``question``, ``answer``) as records of task ``gsm8k``.

    The answer is the number after ``####`` with thousands separators removed (``1,200`` -> ``1200``).
    negatives: ``True`` attaches :data:`GSM8K_NEGATIVES`, or name the categories.
    """
    path = _existing(path, "GSM8K")
    # GSM8K's "answer" is the worked solution; an absent answer field makes parse_record read "#### n".
    fields = FieldMap(prompt="question", solution="answer", answer="final_answer")
    categories = GSM8K_NEGATIVES if negatives is True else tuple(negatives or ())
    records = []
    for i, (source, line, row) in enumerate(iter_raw_rows(path)):
        if limit is not None and i >= limit:
            break
        record = parse_record(row, fields, source=source, line=line, default_task="gsm8k")
        if record.answer is None:
            raise ExpertSetError("solution does not end in '#### <number>'", source=source, line=line,
                                 field_name="answer", hint="Is this the GSM8K 'main' configuration?")
        solution = strip_calculator(record.solution) if strip_annotations else record.solution
        record = replace(record, solution=solution, answer=record.answer.replace(",", ""), task="gsm8k",
                         domain="math/word", id=f"gsm8k-{path.name.split('.')[0]}-{i}")
        if categories:
            record = attach_negatives(record, random.Random(f"neg:{seed}:{record.id}"), categories)
        records.append(record)
    return records


def load_humaneval(path: str | Path = HUMANEVAL_PATH, *, limit: int | None = None) -> list[ExpertRecord]:
    """HumanEval rows as records of task ``humaneval``: solution = canonical solution, id = ``task_id``,
    meta = ``{"test": ..., "entry_point": ...}`` for a code-execution scorer (see :func:`humaneval_program`).
    """
    path = _existing(path, "HumanEval")
    fields = FieldMap(solution="canonical_solution", id="task_id")
    records = []
    for i, (source, line, row) in enumerate(iter_raw_rows(path)):
        if limit is not None and i >= limit:
            break
        record = parse_record(row, fields, source=source, line=line, default_task="humaneval")
        for key in ("test", "entry_point"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise ExpertSetError("missing or not a string", source=source, line=line, field_name=key,
                                     hint="HumanEval rows need 'test' and 'entry_point'.")
        records.append(replace(record, answer=None, task="humaneval", domain="code/python",
                               meta={"test": row["test"], "entry_point": row["entry_point"]}))
    return records


def humaneval_program(record: ExpertRecord, completion: str | None = None) -> str:
    """The program that checks ``completion`` (default: the canonical solution) against the record's test."""
    body = record.solution if completion is None else completion
    return f"{record.prompt}{body}\n\n{record.meta['test']}\n\ncheck({record.meta['entry_point']})\n"
