"""The tracker interface: callbacks decide what is logged, trackers decide where.

Every method takes the training step explicitly. Names follow ``evalcast/<group>/<metric>``.
Backends that cannot show a kind of content (a table, a curve) simply ignore it.
"""

from __future__ import annotations

import logging
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Literal

from evalcast.errors import ErrorPolicy

AlertLevel = Literal["INFO", "WARN", "ERROR"]
logger = logging.getLogger("evalcast")


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

    def prepare(self) -> None:
        """Resolve, in the caller's (training) thread, what a backend keeps per thread (MLflow's active run).

        :class:`CompositeTracker` calls it before handing a call to the tracker's worker thread; it must
        only read local state, never wait on a server."""


class CompositeTracker(Tracker):
    """Fans every call out to several trackers, guarded and bounded in time.

    One tracker failing or hanging never stops the others or the training loop. Each tracker's calls
    run in order on its own daemon thread; the caller waits at most ``timeout_s`` per call. A tracker
    whose call has not returned by then is *down*: its later calls are dropped at once (the run
    directory keeps every metric) until the hung call returns. A tracker's first failure (an exception
    or a timeout) is logged with its traceback by ``policy`` (re-raised when strict); repeats are
    logged at DEBUG and counted in :attr:`failures`, so an outage is reported once, not per step.
    """

    def __init__(self, trackers: Sequence[Tracker], policy: ErrorPolicy = ErrorPolicy(),
                 timeout_s: float = 30.0) -> None:
        self.trackers = list(trackers)
        self.policy = policy
        self.timeout_s = timeout_s
        self.failures: dict[int, int] = {}
        """Failed or dropped calls per tracker (by ``id``)."""
        self._lanes: dict[int, _Lane] = {}

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for tracker in self.trackers:
            lane = self._lanes.setdefault(id(tracker), _Lane(repr(tracker)))
            first = id(tracker) not in self.failures
            level = logging.ERROR if first else logging.DEBUG
            with self.policy.guard(f"tracker {tracker!r} in {method}", level=level) as failure:
                if lane.busy():
                    raise TrackerDown(f"{tracker!r} is still blocked in an earlier call; {method} dropped")
                tracker.prepare()
                lane.call(getattr(tracker, method), args, kwargs, self.timeout_s)
            if failure:
                self.failures[id(tracker)] = self.failures.get(id(tracker), 0) + 1
                if first:
                    logger.error("evalcast: tracker %r failed; its later failures are logged at DEBUG only (the "
                                 "run directory keeps every metric)", tracker)

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


class TrackerDown(TimeoutError):
    """A tracker call did not return in time, or was dropped because an earlier one has not returned."""


class _Lane:
    """One tracker's calls, run in order on a daemon thread (a hung call never blocks interpreter exit)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._pending: Future[Any] | None = None
        self._thread: threading.Thread | None = None

    def busy(self) -> bool:
        return self._pending is not None and not self._pending.done()

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"evalcast-tracker {self.name}", daemon=True)
            self._thread.start()
        future: Future[Any] = Future()
        self._jobs.put((lambda: fn(*args, **kwargs), future))
        self._pending = future
        try:
            future.result(timeout)
        except FutureTimeout:
            raise TrackerDown(f"{self.name} did not return within {timeout:g} s; its calls are dropped until "
                              "it does") from None

    def _work(self) -> None:
        while True:
            job, future = self._jobs.get()
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)


class NoopTracker(Tracker):
    """Logs nothing (non-zero ranks, tests)."""

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        return None
