"""``--scorer`` on the command line: a scorer spec from text.

``SPEC`` is one of ``exact``, ``exact:REGEX``, ``numeric``, ``numeric:REGEX``, ``code`` or
``MODULE:NAME`` / ``FILE.py:NAME`` (a ``Scorer`` instance or a function ``(record, completion) -> bool |
ScoreResult``); ``TASK=SPEC`` gives a task its own scorer (repeat the option for several tasks).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from evalcast.generate import CodeExecutionScorer, ExactMatchScorer, NumericScorer, Scorer, ScorerSpec, as_scorer


def parse_scorers(specs: Sequence[str] | None) -> ScorerSpec | None:
    """The scorer spec of repeated ``--scorer`` options (``None`` when none was given)."""
    if not specs:
        return None
    whole: list[Scorer] = []
    by_task: dict[str, Scorer] = {}
    for text in specs:
        task, sep, rest = text.partition("=")
        if sep and task and ":" not in task:
            if task in by_task:
                raise ValueError(f"--scorer: task {task!r} given twice")
            by_task[task] = parse_scorer(rest)
        else:
            whole.append(parse_scorer(text))
    if whole and (by_task or len(whole) > 1):
        raise ValueError("--scorer: give either one scorer for every task or TASK=SPEC per task, not both")
    return whole[0] if whole else by_task


def parse_scorer(text: str) -> Scorer:
    """One scorer from ``exact[:REGEX]``, ``numeric[:REGEX]``, ``code`` or ``MODULE:NAME`` / ``FILE.py:NAME``."""
    kind, sep, arg = text.partition(":")
    if kind == "exact":
        return ExactMatchScorer(patterns=(arg,)) if sep else ExactMatchScorer()
    if kind == "numeric":
        return NumericScorer(patterns=(arg,)) if sep else NumericScorer()
    if kind == "code" and not sep:
        return CodeExecutionScorer()
    if not sep or not arg:
        raise ValueError(f"--scorer {text!r}: use exact, exact:REGEX, numeric, numeric:REGEX, code, MODULE:NAME or "
                         "FILE.py:NAME")
    if kind.endswith(".py"):
        path = Path(kind)
        if not path.exists():
            raise ValueError(f"--scorer {text!r}: no file {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(kind)
    if not hasattr(module, arg):
        raise ValueError(f"--scorer {text!r}: {kind} has no attribute {arg!r}")
    try:
        return as_scorer(getattr(module, arg))
    except TypeError as exc:
        raise ValueError(f"--scorer {text!r}: {exc}") from None
