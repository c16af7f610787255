"""Tracker outage: a tracker that raises or hangs on every call never stops training, never loses a
metric from the run directory, and is reported once, not per step (real backends in
``benchmarks/reliability_checks/outage.py``; here fakes, since a hang cannot be caused otherwise)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import pytest

from evalcast import Monitor, MonitorConfig
from evalcast.trackers.base import CompositeTracker, Tracker, _Lane


class Raising(Tracker):
    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        raise ConnectionError("server unreachable")


class Hanging(Tracker):
    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        self.calls += 1
        self.release.wait()


class Recording(Tracker):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def log(self, metrics: Mapping[str, float], *, step: int) -> None:
        self.steps.append(step)


def test_training_goes_on_through_a_raising_and_a_hanging_tracker(experts, model, tmp_path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    hanging, good = Hanging(), Recording()
    monitor = Monitor(experts, run_dir=tmp_path, trackers=[Raising(), hanging, good], forecast=None,
                      config=MonitorConfig(tracker_timeout_s=0.2))
    with caplog.at_level(logging.DEBUG, logger="evalcast"):
        for step in range(1, 5):
            monitor.step(model, step=step)
    monitor.close()
    history = monitor.history()
    assert [r.step for r in history] == [1, 2, 3, 4] and all(r.ok and r.metrics for r in history)
    assert good.steps == [1, 2, 3, 4]  # a healthy tracker beside the broken ones gets every call
    assert hanging.calls == 1  # later calls were dropped while the first one hangs
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len([r for r in errors if "Raising" in r.getMessage()]) == 2  # the failure and the note, once
    assert len([r for r in errors if "Hanging" in r.getMessage()]) == 2
    assert sum(monitor.trackers.failures.values()) == 2 * 4 + 1  # 4 logs + close per bad tracker, 1 ok close
    hanging.release.set()


def test_a_tracker_that_answers_again_gets_calls_again() -> None:
    hanging = Hanging()
    fan = CompositeTracker([hanging], timeout_s=0.05)
    fan.log({"a": 1.0}, step=1)
    fan.log({"a": 1.0}, step=2)  # dropped: the first call still hangs
    hanging.release.set()  # the server answers again
    for _ in range(100):
        if not fan._lanes[id(hanging)].busy():
            break
        threading.Event().wait(0.01)
    fan.log({"a": 1.0}, step=3)
    assert hanging.calls == 2


def test_without_the_deadline_a_hanging_tracker_blocks_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """The companion: the outage test above depends on the deadline (here removed)."""
    monkeypatch.setattr(_Lane, "call", lambda self, fn, args, kwargs, timeout: fn(*args, **kwargs))
    hanging = Hanging()
    caller = threading.Thread(target=CompositeTracker([hanging], timeout_s=0.05).log, args=({"a": 1.0},),
                              kwargs={"step": 1}, daemon=True)
    caller.start()
    caller.join(1.0)
    assert caller.is_alive()  # still waiting on the tracker
    hanging.release.set()
    caller.join()
