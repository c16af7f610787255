"""Alerts: what a rule raises (:class:`Alert`, a part of the run record), and what a rule is.

A rule is a pure function of the run history (the records of the run directory, the current checkpoint
last). Its hysteresis — patience, cool-down, "already fired" — is read from that same history, so a
resumed or rewound run decides exactly as an uninterrupted one, with no counter to persist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from evalcast.runs.record import Alert, AlertKind, Level, Record

__all__ = ["Alert", "AlertKind", "AlertRule", "Level"]


class AlertRule(Protocol):
    """Looks at the history (current checkpoint last) and raises at most one alert."""

    name: str

    def check(self, history: Sequence[Record]) -> Alert | None: ...
