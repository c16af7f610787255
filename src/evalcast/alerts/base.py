"""Alerts: what a rule raises, and what a rule is.

A rule is a pure function of the run history (the records of the run directory, the current checkpoint
last). Its hysteresis — patience, cool-down, "already fired" — is read from that same history, so a
resumed or rewound run decides exactly as an uninterrupted one, with no counter to persist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

AlertKind = Literal["early_stop", "target_reached", "plateau", "regression", "data_mix"]
Level = Literal["INFO", "WARN", "ERROR"]


@dataclass(frozen=True)
class Alert:
    """One alert: who raised it, a readable reason, and what to do about it.

    stop_training: the rule asks the trainer to stop (only rules configured to act set it).
    groups: the tasks or domains concerned. suggestion: e.g. new mixture weights per domain.
    """

    rule: str
    kind: AlertKind
    step: int
    title: str
    text: str
    level: Level = "WARN"
    stop_training: bool = False
    groups: tuple[str, ...] = ()
    suggestion: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["groups"], out["suggestion"] = list(self.groups), dict(self.suggestion)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        return cls(**{**d, "groups": tuple(d.get("groups", ())), "suggestion": dict(d.get("suggestion", {}))})


class AlertRule(Protocol):
    """Looks at the history (current checkpoint last) and raises at most one alert."""

    name: str

    def check(self, history: Sequence[Mapping[str, Any]]) -> Alert | None: ...
