"""Reading a run history for alert rules: values, directions, streaks and earlier firings.

Only evaluated records count (a skipped save has no metrics; :func:`evalcast.runs.ok_records`). A rule
judges every record with a *verdict*: True (its condition holds there), False (it does not), or None (not
measured at that checkpoint: no anchor, no forecast), which neither breaks nor extends a streak.

Hysteresis, from the history alone: a rule fires for a key (a task or domain) when the verdict has held
at ``patience`` consecutive measured checkpoints ending with the current one, and, if it fired for that
key before, only once the condition has cleared since and ``cooldown`` checkpoints have passed (``None``:
never again). Earlier firings are read from the ``alerts`` field of earlier records, so a resumed or
rewound run decides exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal

from evalcast.runs.record import Record
from evalcast.validation import Rule, check_config, non_empty

Direction = Literal["higher", "lower"]
Verdict = bool | None
History = Sequence[Record]
"""The run's records, oldest first (the current checkpoint last), as every rule reads them."""

#: Metrics whose direction is known (a weighting suffix such as ``nll.rarity`` keeps its metric's).
HIGHER_IS_BETTER = frozenset({
    "prob", "top1", "top5", "top10", "recip_rank", "margin", "greedy_match", "answer_match", "pair_accuracy",
    "pair_margin", "pass@1_anchor", "pass@1_probe", "forecast_final", "forecast_lo80", "forecast_hi80",
    "forecast_lo95", "forecast_hi95", "probe_auroc", "probe_spearman"})
LOWER_IS_BETTER = frozenset({"nll", "log_rank", "bpb", "probe_brier", "probe_ece", "probe_pass@1_error"})


def sign(metric: str, direction: Direction | None) -> float:
    """+1 when a higher ``metric`` is better, -1 when lower is; ``direction`` overrides the known table."""
    if direction is not None:
        if direction not in ("higher", "lower"):
            raise ValueError(f"direction={direction!r}: use 'higher' or 'lower'")
        return 1.0 if direction == "higher" else -1.0
    base = metric.split(".")[0]
    if base in HIGHER_IS_BETTER:
        return 1.0
    if base in LOWER_IS_BETTER:
        return -1.0
    raise ValueError(f"evalcast does not know whether a higher '{metric}' is better or worse; "
                     "give direction='higher' or direction='lower'")


def reading(record: Record, group: str, metric: str) -> tuple[bool, float | None]:
    """``(measured, value)`` of ``evalcast/<group>/<metric>`` in one record (a non-finite value is None).

    A forecast figure counts as measured wherever a forecast was attempted for the group (its
    ``forecast_status`` is there), and its value is None where the forecast was refused: a refusal breaks
    a streak instead of being skipped over.
    """
    value = record.value(group, metric)
    number = value if math.isfinite(value) else None
    if metric.startswith("forecast_") and metric != "forecast_status":
        return record.has(group, "forecast_status"), number
    return number is not None, number


def series(records: Sequence[Record], group: str, metric: str) -> list[float | None]:
    """The metric at every record (None where it was not measured)."""
    return [reading(r, group, metric)[1] for r in records]


def fired(records: Sequence[Record], rule: str, key: str) -> list[int]:
    """Indices of the records where ``rule`` raised an alert naming ``key``."""
    return [i for i, r in enumerate(records) if any(a.rule == rule and key in a.groups for a in r.alerts)]


def streak(verdicts: Sequence[Verdict]) -> list[int]:
    """Indices of the trailing run of True verdicts (None skipped); empty unless the last record is True."""
    if not verdicts or verdicts[-1] is not True:
        return []
    run: list[int] = []
    for i in range(len(verdicts) - 1, -1, -1):
        if verdicts[i] is None:
            continue
        if not verdicts[i]:
            break
        run.append(i)
    return run[::-1]


def due(verdicts: Sequence[Verdict], earlier: Sequence[int], patience: int, cooldown: int | None) -> list[int]:
    """The ``patience`` record indices that make a rule fire now for one key, or empty (see module doc)."""
    run = streak(verdicts)
    if len(run) < patience:
        return []
    if earlier:
        last = earlier[-1]
        if run[0] <= last or cooldown is None or len(verdicts) - 1 - last < cooldown:
            return []
    return run[-patience:]


def check_rule(rule: Any, **rules: Rule) -> None:
    """A rule's fields: types, ``patience >= 1``, ``cooldown >= 1`` or None, a non-empty ``group``, a known
    direction (see :func:`sign`), and ``rules`` (see :func:`evalcast.validation.check_config`)."""
    fields = {f.name for f in dataclasses.fields(rule)}
    hysteresis = {"patience": Rule(">= 1 (checkpoints before it fires)", lambda v: v >= 1),
                  "cooldown": Rule(">= 1 checkpoint, or None to fire only once", lambda v: v >= 1)}
    named = {"group": non_empty()} if "group" in fields else {}
    check_config(rule, **{k: v for k, v in hysteresis.items() if k in fields}, **named, **rules)
    if "metric" in fields:
        sign(rule.metric, getattr(rule, "direction", None))


def steps_of(records: Sequence[Record], indices: Sequence[int]) -> str:
    """``"steps 200, 250, 300"`` for the records at ``indices``."""
    steps = [str(records[i].step) for i in indices]
    return f"step{'s' if len(steps) > 1 else ''} {', '.join(steps)}"


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value + 0.0:.4g}"  # + 0.0: no "-0"
