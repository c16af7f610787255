"""Data-mix rules: some domains fall behind while others do fine, which re-weighting the mixture can fix.

* :class:`DomainRegression`: a domain's metric worsens (against its best so far) while the other domains
  still improve: typical when a domain's data thinned out or dropped from the mix.
* :class:`DomainShortfall`: some domains' forecasts (or proxies) fall short of their targets while others
  are on track.

The alert names the domains (``Alert.groups``) and suggests mixture weights in ``Alert.suggestion``: every
watched group gets ``1 + boost * gap`` (``gap``: its relative regression or shortfall, 0 when fine),
normalised to sum 1. They are the weights to use if the current mix is uniform over those groups;
for another mix, multiply its weights by them and renormalise. An ``on_alert`` hook can apply them
(e.g. change a sampler's weights); evalcast only suggests.

Forecasts are made per task (and ``all``), proxies per task and per ``domain/<prefix>``: with forecast
metrics, watch tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
from evalcast.alerts.rules import regression_verdicts
from evalcast.runs.history import ok_records
from evalcast.runs.record import Record
from evalcast.validation import Rule, at_least, each, non_empty

_TINY = 1e-12


def watched_groups(record: Record) -> list[str]:
    """Every top-level ``domain/<name>`` group of a record, else every task group."""
    groups = sorted({key.split("/")[1] if not key.startswith("evalcast/domain/") else "/".join(key.split("/")[1:3])
                     for key in record.metrics if key.count("/") >= 2})
    domains = [g for g in groups if g.startswith("domain/")]
    return domains or [g for g in groups if g not in ("all", "cost")]


def suggest_weights(groups: Sequence[str], gaps: Mapping[str, float], boost: float) -> dict[str, float]:
    """``1 + boost * gap`` per group (gap 0 when absent), normalised to sum 1."""
    raw = {g: 1.0 + boost * max(gaps.get(g, 0.0), 0.0) for g in groups}
    total = sum(raw.values())
    return {g: w / total for g, w in raw.items()}


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known and len(known) == len(values) else None


def _weights_text(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{g} {w:.2f}" for g, w in sorted(weights.items(), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class DomainRegression:
    """A domain's ``metric`` is worse than its best so far by more than ``tolerance`` while the others
    improved over the last ``window`` checkpoints, at ``patience`` consecutive checkpoints.

    groups: the domains (or tasks) to watch; default every top-level ``domain/<name>`` of the history
        (else every task).
    aggregate: compare with this group's improvement (e.g. ``"all"``) instead of the mean of the other
        watched groups (``None``; ``all`` includes the regressing domain, which can hide the pattern).
    boost: how strongly the suggestion favours the regressing domains (gap = relative regression).
    """

    groups: tuple[str, ...] | None = None
    metric: str = "nll"
    aggregate: str | None = None
    tolerance: float = 0.02
    window: int = 2
    patience: int = 2
    boost: float = 1.0
    stop_training: bool = False
    direction: Direction | None = None
    cooldown: int | None = 5
    name: str = "data_mix:regression"

    def __post_init__(self) -> None:
        check_rule(self, groups=each(non_empty()), aggregate=non_empty(), tolerance=at_least(0), window=at_least(1),
                   boost=at_least(0), name=non_empty())

    def _improving(self, values: Mapping[str, Sequence[float | None]], group: str, s: float) -> list[bool]:
        """Per record: whether the reference (``aggregate``, else the mean of the other groups) improved
        over the last ``window`` records."""
        if self.aggregate is not None:
            reference = list(values[self.aggregate])
        else:
            others = [v for g, v in values.items() if g != group]
            reference = [_mean([v[i] for v in others]) for i in range(len(values[group]))]
        out = [False] * len(reference)
        for i in range(self.window, len(reference)):
            now, before = reference[i], reference[i - self.window]
            out[i] = now is not None and before is not None and s * (now - before) > 0
        return out

    def check(self, history: History) -> Alert | None:
        records = ok_records(history)
        if not records:
            return None
        s = sign(self.metric, self.direction)
        groups = list(self.groups) if self.groups is not None else watched_groups(records[-1])
        values = {g: series(records, g, self.metric) for g in {*groups, *([self.aggregate] if self.aggregate else [])}}
        flagged: dict[str, tuple[list[int], int, float, float]] = {}  # run, best's index, best, now
        for group in groups:
            improving = self._improving(values, group, s)
            verdicts, b = regression_verdicts(values[group], s, self.tolerance)
            verdicts = [v if v is None else v and improving[i] for i, v in enumerate(verdicts)]
            run = due(verdicts, fired(records, self.name, group), self.patience, self.cooldown)
            best, now = values[group][b], values[group][-1]
            if run and best is not None and now is not None:
                flagged[group] = (run, b, best, now)
        if not flagged:
            return None
        gaps = {g: s * (best - now) / max(abs(best), _TINY) for g, (_, _, best, now) in flagged.items()}
        weights = suggest_weights(groups, gaps, self.boost)
        moved = "rose" if s < 0 else "fell"
        lines = [f"{g} {self.metric} {moved} from its best {fmt(best)} (step {records[b].step}) to {fmt(now)}"
                 for g, (_, b, best, now) in flagged.items()]
        run = next(iter(flagged.values()))[0]
        names = ", ".join(flagged)
        reference = self.aggregate or "the other groups (on average)"
        return Alert(
            rule=self.name, kind="data_mix", step=int(records[-1].step),
            title=f"data mix: {names} regressing",
            text=(f"{'; '.join(lines)}, beyond tolerance {fmt(self.tolerance)} at {self.patience} consecutive "
                  f"checkpoints ({steps_of(records, run)}), while {reference} improved over the last {self.window} "
                  f"checkpoints. The training mix may under-serve {names} (was its data reduced or dropped?); "
                  f"consider raising its weight. Suggested weights: {_weights_text(weights)}."),
            stop_training=self.stop_training, groups=tuple(flagged), suggestion=weights)


@dataclass(frozen=True)
class DomainShortfall:
    """Some groups' ``metric`` falls short of their ``targets`` while at least one other is on track, at
    ``patience`` consecutive measured checkpoints.

    targets: the value wanted per group (task or domain), e.g. ``{"add": 0.6, "sort": 0.5}``.
    metric: ``forecast_final`` (default: the forecast pass@1 at the end of the budget), ``forecast_hi80``
        (short even by the optimistic bound), ``pass@1_probe``, or a proxy (``nll`` targets from above).
    boost: how strongly the suggestion favours the groups that fall short (gap = relative shortfall).
    """

    targets: Mapping[str, float]
    metric: str = "forecast_final"
    patience: int = 2
    boost: float = 1.0
    stop_training: bool = False
    direction: Direction | None = None
    cooldown: int | None = 5
    name: str = "data_mix:shortfall"

    def __post_init__(self) -> None:
        check_rule(self, targets=Rule("targets for at least 2 groups (some short, some on track)",
                                      lambda t: len(t) >= 2), boost=at_least(0), name=non_empty())
        object.__setattr__(self, "targets", dict(self.targets))

    def _short(self, record: Record, s: float) -> dict[str, bool | None]:
        """Per group at one record: short of its target (True), not short (False: on track, or a refused
        forecast, which breaks a streak) or not measured there (None)."""
        out: dict[str, bool | None] = {}
        for group, target in self.targets.items():
            measured, value = reading(record, group, self.metric)
            out[group] = None if not measured else value is not None and s * (target - value) > 0
        return out

    def check(self, history: History) -> Alert | None:
        records = ok_records(history)
        s = sign(self.metric, self.direction)
        now = [{g: v for g in self.targets if (v := reading(r, g, self.metric)[1]) is not None} for r in records]
        short = [self._short(r, s) for r in records]
        on_track = [{g for g, v in n.items() if not sh[g]} for n, sh in zip(now, short)]
        flagged: dict[str, list[int]] = {}
        for group in self.targets:
            verdicts: list[Verdict] = [None if sh[group] is None else bool(sh[group]) and bool(ok - {group})
                                       for sh, ok in zip(short, on_track)]
            run = due(verdicts, fired(records, self.name, group), self.patience, self.cooldown)
            if run:
                flagged[group] = run
        if not flagged:
            return None
        last = now[-1]
        gaps = {g: s * (self.targets[g] - last[g]) / max(abs(self.targets[g]), _TINY) for g in flagged}
        weights = suggest_weights(list(self.targets), gaps, self.boost)
        relation = ">=" if s > 0 else "<="
        falling = "; ".join(f"{g} at {fmt(last[g])}, target {fmt(self.targets[g])}" for g in flagged)
        fine = [f"{g} ({fmt(last[g])} {relation} {fmt(self.targets[g])})" for g in self.targets if g in on_track[-1]]
        names = ", ".join(flagged)
        doing_fine = f"{', '.join(fine)} {'is' if len(fine) == 1 else 'are'} on track"
        return Alert(
            rule=self.name, kind="data_mix", step=int(records[-1].step),
            title=f"data mix: {names} short of target",
            text=(f"{self.metric} falls short for {falling} at {self.patience} consecutive checkpoints "
                  f"({steps_of(records, next(iter(flagged.values())))}), while {doing_fine}. Consider shifting "
                  f"the training mix toward {names}. Suggested weights: {_weights_text(weights)}."),
            stop_training=self.stop_training, groups=tuple(flagged), suggestion=weights)
