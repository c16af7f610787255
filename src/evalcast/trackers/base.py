"""The tracker interface: callbacks decide what is logged, trackers decide where.

Every method takes the training step explicitly. Names follow ``evalcast/<group>/<metric>``.
Backends that cannot show a kind of content (a table, a curve) simply ignore it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evalcast.errors import ErrorPolicy

AlertLevel = Literal["INFO", "WARN", "ERROR"]


@dataclass(frozen=True)
class Curve:
    """A forecast curve: x values, named y series (``forecast``, ``lo80``, ``hi80`` ...) and observed points."""

    x: Sequence[float]
    series: Mapping[str, Sequence[float]]
    x_name: str = "tokens"
    observed_x: Sequence[float] = ()
    observed_y: Sequence[float] = ()
    title: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


class Tracker(ABC):
    """Where evalcast's numbers go. Subclasses implement :meth:`log`; the rest is optional."""

    @abstractmethod
    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        """Log scalar metrics at ``step`` (the trainer's global step)."""

    def log_curve(self, name: str, curve: Curve, *, step: int) -> None:
        """Log a forecast curve (a chart where the backend has one)."""

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, step: int) -> None:
        """Log a small table (per-domain metrics, per-cluster forecasts)."""

    def log_image(self, name: str, path: str, *, step: int) -> None:
        """Log a rendered figure (PNG file)."""

    def alert(self, title: str, text: str, *, level: AlertLevel = "WARN", step: int) -> None:
        """Raise an alert a person will see."""

    def finish(self) -> None:
        """Flush and close what this tracker opened itself (never a run it was handed)."""


class CompositeTracker(Tracker):
    """Fans every call out to several trackers, guarded: one tracker failing never stops the others.

    A failure is logged with its traceback by ``policy`` (which re-raises it when strict).
    """

    def __init__(self, trackers: Sequence[Tracker], policy: ErrorPolicy = ErrorPolicy()) -> None:
        self.trackers = list(trackers)
        self.policy = policy

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for tracker in self.trackers:
            with self.policy.guard(f"tracker {tracker!r} in {method}"):
                getattr(tracker, method)(*args, **kwargs)

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        self._each("log", metrics, step=step)

    def log_curve(self, name: str, curve: Curve, *, step: int) -> None:
        self._each("log_curve", name, curve, step=step)

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, step: int) -> None:
        self._each("log_table", name, columns, rows, step=step)

    def log_image(self, name: str, path: str, *, step: int) -> None:
        self._each("log_image", name, path, step=step)

    def alert(self, title: str, text: str, *, level: AlertLevel = "WARN", step: int) -> None:
        self._each("alert", title, text, level=level, step=step)

    def finish(self) -> None:
        self._each("finish")


class NoopTracker(Tracker):
    """Logs nothing (non-zero ranks, tests)."""

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        return None
