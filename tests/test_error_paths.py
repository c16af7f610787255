"""Error paths through the one ErrorPolicy: a bug is logged with its traceback at WARNING or above, the caller
goes on (a refusal, a skipped save), and ``strict`` re-raises it. Each check has an 'unguarded' mutation
companion (tests/guarantee.py) showing that it fails when the policy is bypassed."""

from __future__ import annotations

import pytest

from evalcast import Monitor, MonitorConfig
from evalcast.errors import ErrorPolicy
from evalcast.forecast import ClusterConfig, ForecastConfig, Reason, forecast_task
from evalcast.forecast.simulate import SimSpec, simulate_run
from tests.guarantee import handled_with_traceback, unguard

FAST = ForecastConfig(n_bootstrap=50, clusters=ClusterConfig(enabled=False))
WITH_MUTATION = [None, pytest.param("unguarded", marks=pytest.mark.mutation)]


def forecaster_bug(*args, **kwargs):
    raise ZeroDivisionError("a forecaster bug")


@pytest.mark.parametrize("mutation", WITH_MUTATION)
def test_a_forecaster_bug_is_refused_logged_and_raised_when_strict(monkeypatch, caplog, mutation):
    inputs = simulate_run(SimSpec(schedule="constant", seed=21)).at(1.0)
    monkeypatch.setattr("evalcast.forecast.api.build_axis", forecaster_bug)
    if mutation:
        unguard(monkeypatch)
        assert not handled_with_traceback(lambda: forecast_task(inputs, FAST), caplog, "forecasting")
        return
    result: list = []
    assert handled_with_traceback(lambda: result.append(forecast_task(inputs, FAST)), caplog, "forecasting")
    assert result[0].reason == Reason.INTERNAL_ERROR.value
    assert "ZeroDivisionError: a forecaster bug" in result[0].message
    with pytest.raises(ZeroDivisionError, match="a forecaster bug"):
        forecast_task(inputs, FAST, policy=ErrorPolicy(strict=True))


@pytest.mark.parametrize("mutation", WITH_MUTATION)
def test_a_broken_exchange_skips_the_save_and_is_logged(experts, model, tmp_path, monkeypatch, caplog, mutation):
    """The job's store failing (a fake: a real TCPStore failure needs a dead server) at the decision."""
    monitor = Monitor(experts, run_dir=tmp_path / "run")
    agree = monitor.exchange.agree

    def broken(key, *args, **kwargs):
        if key.endswith("/decision"):
            raise ConnectionError("store unreachable")
        return agree(key, *args, **kwargs)
    monkeypatch.setattr(monitor.exchange, "agree", broken)
    if mutation:
        unguard(monkeypatch)
        assert not handled_with_traceback(lambda: monitor.evaluate(model, 1), caplog, "agreeing on the decision")
        return
    assert handled_with_traceback(lambda: monitor.evaluate(model, 1), caplog, "agreeing on the decision")
    assert [(r.step, r.status) for r in monitor.history()] == [(1, "skipped")]
    assert monitor.history()[0].reason == "rank 0 decided nothing in time"
    strict = Monitor(experts, run_dir=tmp_path / "strict", config=MonitorConfig(strict=True))
    monkeypatch.setattr(strict.exchange, "agree", broken)
    with pytest.raises(ConnectionError, match="store unreachable"):
        strict.evaluate(model, 1)
