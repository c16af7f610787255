"""Functional forms, the LR schedule helpers and the fitting helpers recover known parameters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from evalcast.forecast.accuracy import AccuracyPoints, fit_sigmoid
from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.fit import bounded_lstsq, fit_proxy_law, kstep_refit, moving_average
from evalcast.forecast.laws import proxy_law, proxy_law_jac, sigmoid, sigmoid_jac
from evalcast.forecast.prepare import build_axis
from evalcast.forecast.schedule import annealing_areas, lr_phases
from evalcast.forecast.simulate import SimSpec, lr_schedule, simulate_run


def test_annealing_areas_follow_the_definition() -> None:
    lr = np.array([0.5, 1.0, 1.0, 0.8, 0.5, 0.5])
    s1, s2 = annealing_areas(lr, decay=0.9)
    np.testing.assert_allclose(s1, np.cumsum(lr))
    m = np.zeros(6)
    for i in range(2, 6):  # warmup (steps 0..1, up to the peak) adds no momentum
        m[i] = 0.9 * m[i - 1] + (lr[i - 1] - lr[i])
    np.testing.assert_allclose(s2, np.cumsum(m))


def test_constant_lr_has_no_annealing_area() -> None:
    s1, s2 = annealing_areas(lr_schedule(SimSpec(schedule="constant")))
    assert np.all(s2 == 0) and np.all(np.diff(s1) > 0)


@pytest.mark.parametrize("schedule, names", [
    ("cosine", ["warmup", "stable", "decay", "stable"]),
    ("wsd", ["warmup", "stable", "cooldown", "stable"]),
    ("constant", ["warmup", "stable"]),
])
def test_lr_phases(schedule: str, names: list[str]) -> None:
    assert [p.name for p in lr_phases(lr_schedule(SimSpec(schedule=schedule)))] == names


def test_moving_average_is_centred_and_nan_aware() -> None:
    v = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    np.testing.assert_allclose(moving_average(v, 3), [1.0, 1.5, 3.0, 4.5, 5.0])
    line = np.arange(10.0)
    np.testing.assert_allclose(moving_average(line, 5), line)  # no lag at either end


def test_bounded_lstsq_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    design = rng.normal(size=(4, 12, 3))
    targets = rng.normal(size=(5, 12))
    lo, hi = np.array([0.0, -0.2, 0.0]), np.array([0.3, np.inf, 1.0])
    x, cost = bounded_lstsq(design, targets, lo, hi)
    for b in range(5):
        for g in range(4):
            ref = lsq_linear(design[g], targets[b], bounds=(lo, hi))
            assert cost[b, g] == pytest.approx(ref.cost, rel=1e-6, abs=1e-9)
            np.testing.assert_allclose(x[b, g], ref.x, atol=1e-5)


def test_power_law_recovered() -> None:
    rng = np.random.default_rng(1)
    t = np.geomspace(1, 20, 30)
    truth = np.array([0.5, 1.5, 0.4, 0.0])
    y = proxy_law(truth, t, np.zeros_like(t)) * np.exp(0.002 * rng.standard_normal(t.size))
    fit = fit_proxy_law(t, np.zeros_like(t), y, fit_c=False)
    assert fit is not None and fit.theta[3] == 0.0
    np.testing.assert_allclose(fit.theta[:3], truth[:3], rtol=0.1)
    assert proxy_law(fit.theta, np.array([80.0]), np.zeros(1))[0] == pytest.approx(
        proxy_law(truth, np.array([80.0]), np.zeros(1))[0], rel=0.01)


def test_annealing_law_recovered_on_a_cosine_schedule() -> None:
    spec = SimSpec(proxy_noise=0.001, seed=3)
    run = simulate_run(spec)
    axis = build_axis(run.inputs, ForecastConfig())
    y = np.asarray(run.inputs.proxies["nll"])
    w = slice(4, None)
    fit = fit_proxy_law(axis.t1[w] / axis.t1[4], axis.t2[w], y[w], fit_c=True)
    assert fit is not None
    e, _, alpha, c = fit.theta
    assert e == pytest.approx(spec.e, abs=0.03)
    assert alpha == pytest.approx(spec.alpha, rel=0.1)
    assert c == pytest.approx(spec.anneal_drop, rel=0.15)


def test_sigmoid_recovered_and_sign_learned() -> None:
    rng = np.random.default_rng(2)
    y = np.linspace(1.2, 0.6, 9)  # a loss-like proxy falling over training
    true = np.array([-3.0, 0.2, 1.0])
    center, scale = 0.9, 0.6
    n = np.full(9, 400.0)
    acc = rng.binomial(400, sigmoid(true, (y - center) / scale, 0.25)) / 400
    se = np.sqrt(acc * (1 - acc) / n)
    pts = AccuracyPoints(np.arange(9), acc, se, 1 / se**2, np.zeros((1, 9)), 9, "anchors")
    af = fit_sigmoid(y, pts, 0.25, 1.0, center, scale, ForecastConfig(), helper=False)
    assert af.theta[0] == pytest.approx(-3.0, rel=0.25)  # negative: accuracy rises as the proxy falls
    assert af.theta[1] == pytest.approx(0.2, abs=0.1)


def test_kstep_refit_matches_full_refits() -> None:
    rng = np.random.default_rng(4)
    t = np.geomspace(1, 10, 25)
    t2 = np.zeros_like(t)
    truth = np.array([0.4, 1.0, 0.5, 0.0])
    ys = proxy_law(truth, t, t2) * np.exp(0.003 * rng.standard_normal((20, t.size)))
    lo, hi = np.array([0, 0, 1e-3, 0.0]), np.array([0.9, 1e3, 3.0, 0.0])
    th = kstep_refit(lambda p: proxy_law(p, t, t2), lambda p: proxy_law_jac(p, t, t2), truth, ys,
                     np.ones_like(ys), lo, hi, steps=8, log_residuals=True, delta=1e-3)
    for b in range(20):
        full = fit_proxy_law(t, t2, ys[b], fit_c=False)
        assert full is not None
        end = np.array([40.0])
        assert proxy_law(th[b], end, np.zeros(1))[0] == pytest.approx(proxy_law(full.theta, end, np.zeros(1))[0],
                                                                      abs=0.01)


def test_sigmoid_jacobian_matches_finite_differences() -> None:
    z = np.linspace(-2, 2, 7)
    theta = np.array([1.7, 0.3, 0.9])
    jac = sigmoid_jac(theta, z, 0.1)
    for i in range(3):
        d = np.zeros(3)
        d[i] = 1e-6
        num = (sigmoid(theta + d, z, 0.1) - sigmoid(theta - d, z, 0.1)) / 2e-6
        np.testing.assert_allclose(jac[:, i], num, rtol=1e-5, atol=1e-8)
