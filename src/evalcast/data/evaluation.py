"""Evaluation questions: the benchmark items whose pass@1 the user cares about (prompt + answer, no solution).

Expert solutions usually come from a benchmark's train split (sometimes inside the training mix), while
the number that matters is pass@1 on its test questions. Given to an :class:`~evalcast.data.ExpertSet` as
``evaluation=``, these questions replace the expert rows as the anchor questions (generation, the probe's
labels, the forecasts' target) while the proxies keep coming from the expert solutions. Their ids get the
prefix ``eval:`` so they never collide with an expert row's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from evalcast.data.files import LoadReport, iter_raw_rows
from evalcast.data.records import ExpertRecord, ExpertSetError, FieldMap, OnInvalid, parse_record

PREFIX = "eval:"


def load_evaluation(source: str | Path | Any, *, fields: FieldMap | Mapping[str, str] | None = None,
                    split: str | None = None, task: str | None = None, on_invalid: OnInvalid = "error",
                    report: LoadReport | None = None) -> list[ExpertRecord]:
    """Evaluation questions from a file or ``datasets`` object: ``prompt`` and ``answer`` (a solution is
    optional; without one the answer is the text scored after the prompt). Tests for code rows go in
    ``meta`` as for expert rows."""
    fmap = FieldMap.of(fields)
    default_task = task or (Path(source).name.split(".")[0] if isinstance(source, (str, Path)) else "default")
    report = report if report is not None else LoadReport()
    out: list[ExpertRecord] = []
    for name, line, row in iter_raw_rows(source, split=split):
        try:
            if isinstance(row, ExpertSetError):
                raise row
            if isinstance(row, Mapping) and row.get(fmap.solution) is None:
                answer = row.get(fmap.answer)
                if answer is None or not str(answer).strip():
                    raise ExpertSetError("an evaluation question needs an answer (or a solution ending in "
                                         "'#### answer')", source=name, line=line, field_name=fmap.answer)
                row = {**row, fmap.solution: str(answer)}
            out.append(parse_record(row, fmap, source=name, line=line, default_task=default_task))
        except ExpertSetError as exc:
            if on_invalid == "error":
                raise
            report.skipped.append(str(exc))
    report.loaded = len(out)
    return as_evaluation(out)


def as_evaluation(records: Sequence[ExpertRecord]) -> list[ExpertRecord]:
    """Records marked as evaluation questions (ids prefixed ``eval:``); each needs an answer or tests."""
    out = []
    for record in records:
        if record.answer is None and "test" not in record.meta:
            raise ExpertSetError(f"evaluation question {record.id!r} has no answer", source=record.source or
                                 "<evaluation>", field_name="answer", hint="Pass prompt + answer per question.")
        out.append(record if record.id.startswith(PREFIX) else replace(record, id=PREFIX + record.id))
    seen: set[str] = set()
    for record in out:
        if record.id in seen:
            raise ExpertSetError(f"duplicate evaluation question id {record.id!r}", source=record.source or
                                 "<evaluation>", field_name="id")
        seen.add(record.id)
    return out
