"""Multiple-choice rows (lm-eval / MMLU layout): validation of the choices and of the gold index.

``choices`` is a list of strings (or ARC's ``{"text": [...], "label": [...]}``); the gold index comes
from the ``gold`` field or, without one, from ``answer`` (MMLU's integer, or a label such as ARC's ``"B"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def choice_problem(choices: Sequence[Any], gold: Any) -> str:
    """What is wrong with a multiple-choice (choices, gold) pair, or ``""``."""
    if len(choices) < 2:
        return f"a multiple-choice row needs at least 2 choices, got {len(choices)}"
    for k, choice in enumerate(choices):
        if not isinstance(choice, str):
            return f"choice {k} must be a string, got {type(choice).__name__}"
        if not choice.strip():
            return f"choice {k} is empty"
    if isinstance(gold, bool) or not isinstance(gold, int):
        return f"gold must be the integer index of the correct choice, got {gold!r}"
    if not 0 <= gold < len(choices):
        return f"gold index {gold} is out of range for {len(choices)} choices (valid: 0..{len(choices) - 1})"
    return ""


def parse_choices(row: Mapping[str, Any], fields: Any,
                  err: Callable[..., Exception]) -> tuple[tuple[str, ...], int | None]:
    """The row's choices and gold index (``((), None)`` for an open-ended row)."""
    raw = row.get(fields.choices) if fields.choices else None
    if raw is None:
        if fields.gold and row.get(fields.gold) is not None:
            raise err("gold", "given without choices", f"Add the choices as a list in '{fields.choices}'.")
        return (), None
    labels: list[str] = []
    if isinstance(raw, Mapping) and "text" in raw:  # ARC / OpenBookQA layout
        labels = [str(label) for label in raw.get("label") or []]
        raw = raw["text"]
    if not isinstance(raw, (list, tuple)):
        raise err("choices", f"must be a list of strings, got {type(raw).__name__}")
    choices = tuple(raw)
    gold_name = "gold" if fields.gold and row.get(fields.gold) is not None else "answer"
    gold = row.get(getattr(fields, gold_name)) if getattr(fields, gold_name) else None
    if gold is None:
        raise err("gold", "missing: the index of the correct choice",
                  f"Give it in '{fields.gold}' (or an integer '{fields.answer}', the MMLU layout).")
    if isinstance(gold, str):
        stripped = gold.strip()
        if stripped in labels:
            gold = labels.index(stripped)
        elif stripped.isdigit():
            gold = int(stripped)
        elif len(stripped) == 1 and stripped.isalpha() and stripped.upper() == stripped:
            gold = ord(stripped) - ord("A")
        else:
            raise err(gold_name, f"{gold!r} is not an index, a label of the choices {labels} or a letter A..")
    problem = choice_problem(choices, gold)
    if problem:
        name = "gold" if "gold" in problem else "choices"
        raise err(gold_name if name == "gold" else name, problem)
    return tuple(str(c) for c in choices), int(gold)
