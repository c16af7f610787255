"""Early-stop rules over one group's metric: target reached, plateau (forecast or proxy), regression.

Each rule is a frozen dataclass with ``check(history) -> Alert | None``; hysteresis (``patience``,
``cooldown``, "already fired") is read from the history as :mod:`evalcast.alerts.history` describes.
Directions are known for evalcast's metrics (``nll`` lower is better, ``top1``/``pass@1`` higher ...);
give ``direction`` for any other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evalcast.alerts.base import Alert
from evalcast.alerts.history import (
    Direction,
    History,
    Verdict,
    check_rule,
    due,
    fired,
    fmt,
    reading,
    series,
    sign,
    steps_of,
)
from evalcast.runs.history import ok_records
from evalcast.runs.record import Record
from evalcast.validation import at_least, between


def _named(rule: Any, default: str) -> None:
    object.__setattr__(rule, "name", rule.name or default)


def _stopping(stop: bool) -> str:
    return " Training stops, as this rule is configured to." if stop else ""


@dataclass(frozen=True)
class TargetReached:
    """``metric`` of ``group`` reaches ``target`` at ``patience`` consecutive checkpoints where it is measured.

    metric: ``pass@1_anchor`` (real evaluations, counted at anchor checkpoints only), ``pass@1_probe``,
        ``forecast_lo80`` (the forecast's 80% lower bound of the final value: the run is confidently on
        course to reach the target) or any proxy (``nll`` reaches a target from above).
    stop_training: ask the trainer to stop when it fires.
    cooldown: checkpoints before it may fire again, after falling back below the target; None: once per run.
    """

    group: str
    target: float
    metric: str = "pass@1_anchor"
    patience: int = 1
    stop_training: bool = False
    direction: Direction | None = None
    cooldown: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        check_rule(self)
        _named(self, f"target_reached:{self.group}/{self.metric}")

    def check(self, history: History) -> Alert | None:
        records = ok_records(history)
        s = sign(self.metric, self.direction)
        values = series(records, self.group, self.metric)
        verdicts: list[Verdict] = [
            (v is not None and s * (v - self.target) >= 0) if reading(r, self.group, self.metric)[0] else None
            for r, v in zip(records, values)]
        run = due(verdicts, fired(records, self.name, self.group), self.patience, self.cooldown)
        if not run:
            return None
        reached = ", ".join(fmt(values[i]) for i in run)
        relation = ">=" if s > 0 else "<="
        return Alert(
            rule=self.name, kind="target_reached", step=int(records[-1].step), level="INFO",
            title=f"{self.group}: {self.metric} reached {fmt(self.target)}",
            text=(f"{self.group} {self.metric} {relation} {fmt(self.target)} at {len(run)} consecutive measured "
                  f"checkpoint{'s' if len(run) > 1 else ''} ({steps_of(records, run)}: {reached})."
                  + _stopping(self.stop_training)),
            stop_training=self.stop_training, groups=(self.group,))


@dataclass(frozen=True)
class ForecastPlateau:
    """The rest of the budget is not forecast to improve ``group``'s pass@1 by ``min_gain``: stop early.

    At each checkpoint with a forecast, the gain still to come is taken optimistically as the 80% upper
    bound of the final value (``forecast_hi80``) minus the current value; it fires when that stays below
    ``min_gain`` at ``patience`` consecutive forecasts (a refused forecast breaks the streak).
    current: ``"probe"`` (pass@1_probe at that checkpoint), ``"anchor"`` (the latest anchor's pass@1 so
        far) or ``"auto"`` (the probe where it predicts, else the latest anchor).
    """

    group: str = "all"
    min_gain: float = 0.01
    current: Literal["auto", "probe", "anchor"] = "auto"
    patience: int = 3
    stop_training: bool = True
    cooldown: int | None = 5
    name: str = ""

    def __post_init__(self) -> None:
        check_rule(self, min_gain=at_least(0))
        _named(self, f"plateau:{self.group}/forecast")

    def _now(self, records: History) -> list[tuple[float | None, str]]:
        """The current value at every record and where it came from."""
        out: list[tuple[float | None, str]] = []
        anchor: tuple[float | None, str] = (None, "")
        for r in records:
            measured, value = reading(r, self.group, "pass@1_anchor")
            if measured:
                anchor = (value, f"anchor at step {r.step}")
            probe = reading(r, self.group, "pass@1_probe")[1]
            use_probe = self.current == "probe" or (self.current == "auto" and probe is not None)
            out.append((probe, "probe") if use_probe else anchor)
        return out

    def check(self, history: History) -> Alert | None:
        records = ok_records(history)
        hi = series(records, self.group, "forecast_hi80")
        now = self._now(records)
        verdicts: list[Verdict] = []
        for r, h, (c, _) in zip(records, hi, now):
            measured = reading(r, self.group, "forecast_hi80")[0]
            verdicts.append(None if not measured else (h is not None and c is not None and h - c < self.min_gain))
        run = due(verdicts, fired(records, self.name, self.group), self.patience, self.cooldown)
        if not run:
            return None
        current, source = now[-1]
        assert hi[-1] is not None and current is not None
        final = reading(records[-1], self.group, "forecast_final")[1]
        forecast = records[-1].forecasts.get(self.group)
        left = ""
        if forecast is not None and math.isfinite(forecast.x_end) and forecast.x_end and math.isfinite(forecast.x_last):
            left = f" with {1 - forecast.x_last / forecast.x_end:.0%} of the budget left"
        return Alert(
            rule=self.name, kind="plateau", step=int(records[-1].step),
            title=f"{self.group}: no pass@1 gain forecast",
            text=(f"{self.group}: the forecast of the final pass@1 is {fmt(final)} (80% upper bound {fmt(hi[-1])}), "
                  f"at most {fmt(hi[-1] - current)} above the current {fmt(current)} ({source}){left}: less than "
                  f"min_gain {fmt(self.min_gain)} at {self.patience} consecutive forecasts "
                  f"({steps_of(records, run)}). Training on is not forecast to pay off."
                  + _stopping(self.stop_training)),
            stop_training=self.stop_training, groups=(self.group,))


@dataclass(frozen=True)
class ProxyPlateau:
    """``metric`` of ``group`` improved by less than ``min_delta`` over the last ``window`` measured
    checkpoints, at ``patience`` consecutive checkpoints (for runs without forecasts).

    While the learning rate (``train.lr``, recorded by the HF and Lightning adapters) is above
    ``max_lr_fraction`` of its peak so far, a stall is not a plateau: at a high LR the proxy sits on a noise
    floor that a later decay breaks (WSD and constant-LR runs would otherwise stop before their late rise).
    ``None`` ignores the LR; records without one are judged as if so.
    """

    group: str = "all"
    metric: str = "nll"
    window: int = 3
    min_delta: float = 0.01
    patience: int = 2
    stop_training: bool = False
    direction: Direction | None = None
    cooldown: int | None = 5
    max_lr_fraction: float | None = 0.5
    name: str = ""

    def __post_init__(self) -> None:
        check_rule(self, window=at_least(1), min_delta=at_least(0), max_lr_fraction=between(0, 1, low_open=True))
        _named(self, f"plateau:{self.group}/{self.metric}")

    def _lr_high(self, records: Sequence[Record]) -> list[bool]:
        """Per record: its learning rate is above ``max_lr_fraction`` of the peak so far."""
        peak, out = 0.0, []
        for r in records:
            lr = r.train.get("lr")
            peak = max(peak, lr or 0.0)
            out.append(self.max_lr_fraction is not None and lr is not None and lr > self.max_lr_fraction * peak)
        return out

    def check(self, history: History) -> Alert | None:
        records = ok_records(history)
        s = sign(self.metric, self.direction)
        values = series(records, self.group, self.metric)
        measured = [(i, v) for i, v in enumerate(values) if v is not None]
        gains: dict[int, tuple[int, float]] = {}  # record index -> (index compared with, improvement)
        verdicts: list[Verdict] = [None] * len(records)
        lr_high = self._lr_high(records)
        for k, (i, v) in enumerate(measured):
            if k >= self.window:
                j, earlier = measured[k - self.window]
                gains[i] = (j, s * (v - earlier))
            verdicts[i] = i in gains and gains[i][1] < self.min_delta and not lr_high[i]
        run = due(verdicts, fired(records, self.name, self.group), self.patience, self.cooldown)
        if not run:
            return None
        last = len(records) - 1
        before, gain = gains[last]
        return Alert(
            rule=self.name, kind="plateau", step=int(records[-1].step),
            title=f"{self.group}: {self.metric} has plateaued",
            text=(f"{self.group} {self.metric} went from {fmt(values[before])} (step {records[before].step}) to "
                  f"{fmt(values[last])} (step {records[last].step}), an improvement of {fmt(gain)}; it has "
                  f"improved by less than min_delta {fmt(self.min_delta)} over {self.window} checkpoints at "
                  f"{self.patience} consecutive checkpoints ({steps_of(records, run)})."
                  + _stopping(self.stop_training)),
            stop_training=self.stop_training, groups=(self.group,))


@dataclass(frozen=True)
class Regression:
    """``metric`` of ``group`` is worse than its best so far by more than ``tolerance`` at ``patience``
    consecutive measured checkpoints (e.g. ``nll`` rising, ``pass@1_anchor`` or ``forecast_final`` falling)."""

    group: str
    metric: str = "nll"
    tolerance: float = 0.01
    patience: int = 3
    stop_training: bool = False
    direction: Direction | None = None
    cooldown: int | None = 5
    name: str = ""

    def __post_init__(self) -> None:
        check_rule(self, tolerance=at_least(0))
        _named(self, f"regression:{self.group}/{self.metric}")

    def check(self, history: History) -> Alert | None:
        records = ok_records(history)
        s = sign(self.metric, self.direction)
        values = series(records, self.group, self.metric)
        verdicts, b = regression_verdicts(values, s, self.tolerance)
        run = due(verdicts, fired(records, self.name, self.group), self.patience, self.cooldown)
        if not run:
            return None
        return Alert(
            rule=self.name, kind="regression", step=int(records[-1].step),
            title=f"{self.group}: {self.metric} regressed",
            text=(f"{self.group} {self.metric} has been worse than its best {fmt(values[b])} (step "
                  f"{records[b].step}) by more than {fmt(self.tolerance)} at {self.patience} consecutive "
                  f"checkpoints ({steps_of(records, run)}: {', '.join(fmt(values[i]) for i in run)})."
                  + _stopping(self.stop_training)),
            stop_training=self.stop_training, groups=(self.group,))


def regression_verdicts(values: Sequence[float | None], s: float, tolerance: float) -> tuple[list[Verdict], int]:
    """Per record: worse than the best so far by more than ``tolerance`` (None where not measured); and the
    index of the best value (-1 when nothing was measured)."""
    verdicts: list[Verdict] = []
    best: float | None = None
    best_index = -1
    for i, v in enumerate(values):
        if v is not None and (best is None or s * (v - best) > 0):
            best, best_index = v, i
        verdicts.append(None if v is None or best is None else s * (best - v) > tolerance)
    return verdicts, best_index
