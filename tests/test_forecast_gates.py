"""Quality gates refuse with the right reason, and no input makes forecast_task raise."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from evalcast.forecast import (
    Anchor,
    Checkpoints,
    ClusterConfig,
    ForecastConfig,
    GateConfig,
    Reason,
    Schedule,
    TaskForecast,
    TaskInputs,
    forecast_task,
)
from evalcast.forecast.simulate import SimSpec, simulate_run

FAST = ForecastConfig(n_bootstrap=50, clusters=ClusterConfig(enabled=False))
RUN = simulate_run(SimSpec(schedule="constant", seed=21))
N = len(RUN.inputs.checkpoints.x)


def with_proxy(values: np.ndarray, frac: float = 1.0) -> TaskInputs:
    inputs = RUN.at(frac)
    n = len(inputs.checkpoints.x)
    return replace(inputs, proxies={"nll": np.asarray(values, dtype=float)[:n]}, losses={})


def reason(inputs: TaskInputs, cfg: ForecastConfig = FAST) -> str:
    tf = forecast_task(inputs, cfg)
    assert isinstance(tf, TaskForecast)
    assert tf.status == tf.forecast.status
    if tf.status == "refused":
        assert tf.forecast.final is None and tf.message
    return tf.reason


def test_flat_proxy_is_refused() -> None:
    flat = np.full(N, 1.3) + 1e-4 * np.random.default_rng(0).standard_normal(N)
    assert reason(with_proxy(flat)) in (Reason.NO_PROXY.value, Reason.POOR_FIT.value)


def test_noisy_proxy_is_refused_for_poor_fit() -> None:
    noisy = RUN.true_proxy * np.exp(0.15 * np.random.default_rng(1).standard_normal(N))
    noisy = noisy + np.linspace(0.3, 0, N)  # keep a trend, so it is screened in and reaches the fit gate
    assert reason(with_proxy(noisy)) == Reason.POOR_FIT.value


def test_too_short_history_is_refused() -> None:
    assert reason(with_proxy(RUN.inputs.proxies["nll"], 0.1)) == Reason.TOO_FEW_POINTS.value


def test_narrow_compute_range_is_refused() -> None:
    inputs = with_proxy(RUN.inputs.proxies["nll"])
    ck = inputs.checkpoints
    x = np.asarray(ck.x) + 50 * float(np.asarray(ck.x)[-1])  # 40 checkpoints within a 1.02x compute range
    inputs = replace(inputs, checkpoints=Checkpoints(x, ck.step, 60 * float(x[-1])))
    assert reason(inputs, replace(FAST, law="power")) == Reason.COMPUTE_RANGE.value


def test_too_few_anchors_is_refused() -> None:
    inputs = replace(with_proxy(RUN.inputs.proxies["nll"]), anchors=list(RUN.inputs.anchors)[:2],
                     probe_accuracy=None, probe_per_question=None)
    assert reason(inputs) == Reason.TOO_FEW_ANCHORS.value


def test_anchor_range_within_noise_is_refused() -> None:
    anchors = [Anchor(i, 0.30 + 0.01 * (k % 2), 50) for k, i in enumerate((5, 10, 20, 30))]
    inputs = replace(with_proxy(RUN.inputs.proxies["nll"]), anchors=anchors, probe_accuracy=None,
                     probe_per_question=None)
    assert reason(inputs) == Reason.ANCHOR_RANGE.value


def test_wide_interval_is_refused() -> None:
    tight = replace(FAST, gates=GateConfig(max_interval80_frac=1e-4))
    assert reason(RUN.at(0.5), tight) == Reason.INTERVAL_TOO_WIDE.value


def test_poor_r2_threshold_is_configurable() -> None:
    assert reason(RUN.at(0.5), replace(FAST, gates=GateConfig(min_r2=0.999999999))) == Reason.POOR_FIT.value


def test_exponent_at_bound_is_refused() -> None:
    x = np.asarray(RUN.inputs.checkpoints.x)
    linear = 2.0 - 1.5 * x / x[-1]  # straight line in compute: only α at its upper bound bends that little
    assert reason(with_proxy(linear), replace(FAST, law="power")) in (Reason.EXPONENT_AT_BOUND.value,
                                                                       Reason.POOR_FIT.value)


def test_step_like_anchors_are_refused() -> None:
    steps = ((5, 0.0), (10, 0.0), (17, 0.0), (18, 1.0), (25, 1.0), (30, 1.0))  # 0 → 1 between two checkpoints
    anchors = [Anchor(i, a, 1000) for i, a in steps]
    inputs = replace(with_proxy(RUN.inputs.proxies["nll"]), anchors=anchors, probe_accuracy=None,
                     probe_per_question=None)
    assert reason(inputs) in (Reason.SLOPE_AT_BOUND.value, Reason.FIT_FAILED.value)


def test_refusal_codes_are_machine_readable() -> None:
    tf = forecast_task(with_proxy(RUN.inputs.proxies["nll"], 0.1), FAST)
    assert tf.reason in {r.value for r in Reason}
    assert tf.to_dict()["forecast"]["final"] is None


BAD_INPUTS = {
    "empty checkpoints": TaskInputs("t", Checkpoints([], [], 1.0), {}),
    "nan everywhere": TaskInputs("t", Checkpoints(np.arange(1, 11.0), np.arange(1, 11), 20.0),
                                 {"nll": np.full(10, np.nan)}, anchors=[Anchor(3, float("nan"), 10)]),
    "infinities": TaskInputs("t", Checkpoints(np.arange(1, 11.0), np.arange(1, 11), np.inf),
                             {"nll": np.full(10, np.inf)}),
    "constant proxy": TaskInputs("t", Checkpoints(np.arange(1, 21.0), np.arange(1, 21), 40.0),
                                 {"nll": np.ones(20)}, anchors=[Anchor(i, 0.5, 100) for i in (2, 8, 14, 19)]),
    "decreasing x": TaskInputs("t", Checkpoints(np.arange(10, 0, -1.0), np.arange(10), 20.0), {"nll": np.ones(10)}),
    "wrong lengths": TaskInputs("t", Checkpoints(np.arange(1, 11.0), np.arange(1, 11), 20.0),
                                {"nll": np.ones(3)}, losses={"val_loss": "abc"}),  # type: ignore[dict-item]
    "bad anchors": TaskInputs("t", Checkpoints(np.arange(1, 11.0), np.arange(1, 11), 20.0),
                              {"nll": 1 / np.arange(1, 11)},
                              anchors=[Anchor(99, 0.5, 10), Anchor(2, 1.5, 10), Anchor(3, 0.2, 0),
                                       "junk"]),  # type: ignore[list-item]
    "bad chance": replace(RUN.inputs, chance=1.0),
    "bad schedule": replace(RUN.inputs, checkpoints=replace(RUN.inputs.checkpoints, schedule=Schedule([np.nan, 1.0]))),
    "x_end before last": replace(RUN.inputs, checkpoints=replace(RUN.inputs.checkpoints, x_end=1.0)),
    "not inputs at all": None,
    "nan probe and per-question": replace(RUN.inputs, probe_accuracy=np.full(N, np.nan),
                                          probe_per_question={"q": np.full(N, np.inf)}),
    "per-question junk": replace(RUN.inputs, anchors=[Anchor(a.index, a.accuracy, a.n_questions, {"q": "x"})
                                                      for a in RUN.inputs.anchors]),  # type: ignore[dict-item]
    "all zero accuracy": replace(RUN.inputs, anchors=[Anchor(a.index, 0.0, 100) for a in RUN.inputs.anchors]),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_no_input_raises(name: str) -> None:
    tf = forecast_task(BAD_INPUTS[name], FAST)  # type: ignore[arg-type]
    assert isinstance(tf, TaskForecast)
    assert tf.status in ("ok", "refused") and tf.reason in {r.value for r in Reason} | {""}
    if tf.status == "refused":
        assert tf.forecast.final is None and tf.message
    tf.to_dict()


def test_bad_input_is_named_not_an_internal_error() -> None:
    for name in ("empty checkpoints", "decreasing x", "bad chance", "bad schedule", "x_end before last"):
        assert forecast_task(BAD_INPUTS[name], FAST).reason in (Reason.INVALID_INPUT.value,
                                                                Reason.TOO_FEW_POINTS.value), name


def test_random_garbage_never_raises() -> None:
    rng = np.random.default_rng(5)
    for _ in range(15):
        n = int(rng.integers(0, 30))
        x = np.cumsum(rng.random(n) + 0.01)
        values = rng.choice([np.nan, np.inf, -np.inf, 0.0, 1.0, -3.0, 1e300], size=n) * rng.random(n)
        anchors = [Anchor(int(rng.integers(-2, n + 2)), float(rng.random()), int(rng.integers(0, 50)))
                   for _ in range(int(rng.integers(0, 6)))]
        inputs = TaskInputs("g", Checkpoints(x, np.arange(n), float(x[-1] * 3) if n else 1.0),
                            {"a": values, "b": rng.random(n)}, anchors=anchors, losses={"val_loss": values})
        tf = forecast_task(inputs, FAST)
        assert isinstance(tf, TaskForecast) and tf.reason != Reason.INTERNAL_ERROR.value, tf.message


def test_wsd_run_before_its_cooldown_is_refused_then_forecast_once_it_starts() -> None:
    run = simulate_run(SimSpec(schedule="wsd", seed=2))
    assert reason(run.at(0.5)) == Reason.ANNEALING_UNOBSERVED.value
    conditional = forecast_task(run.at(0.5), replace(FAST, gates=GateConfig(refuse_unobserved_annealing=False)))
    assert conditional.status == "ok" and "annealing_unobserved" in conditional.forecast.flags
    assert conditional.forecast.final < run.final - 0.05  # leaving the cool-down out would under-forecast
    after = forecast_task(run.at(0.9), FAST)
    assert after.status == "ok" and "phase:cooldown" in after.forecast.flags
    assert after.forecast.final == pytest.approx(run.final, abs=0.03)
