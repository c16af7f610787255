"""The multi-power law: its drop term, the shared shape fitted on references, and its transfer to a prefix."""

from __future__ import annotations

import numpy as np
import pytest

from evalcast.forecast.multipower import DecayShape, drop_term, mpl, run_drop, schedule_terms
from evalcast.forecast.shapefit import LawSeries, fit_shared_shape
from evalcast.forecast.simulate import SimSpec, lr_schedule
from evalcast.forecast.transfer import AlphaPrior, fit_transfer

SHAPE = DecayShape(C=2.0, beta=0.6, gamma=0.6, drop_ratio=300.0)


def per_step_drop(lr: np.ndarray, steps: np.ndarray, kappa: float, beta: float, gamma: float) -> np.ndarray:
    """The law's drop term summed step by step, straight from its definition."""
    eta = lr / lr.max()
    warm = int(np.argmax(eta))
    cum = np.cumsum(eta)
    out = []
    for t in steps:
        k = np.arange(warm + 1, t + 1)
        response = 1 - (1 + kappa * eta[k] ** -gamma * (cum[t] - cum[k - 1])) ** -beta
        out.append(np.sum((eta[k - 1] - eta[k]) * response))
    return np.array(out)


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
@pytest.mark.parametrize("kappa, beta, gamma", [(0.1, 0.6, 0.6), (1e-3, 0.3, 0.2), (5.0, 1.0, 0.8)])
def test_blocked_drop_term_matches_the_step_by_step_sum(schedule: str, kappa: float, beta: float,
                                                        gamma: float) -> None:
    lr = lr_schedule(SimSpec(schedule=schedule, steps=8000))
    steps = np.linspace(200, 8000, 40).round().astype(int)
    exact = per_step_drop(lr, steps, kappa, beta, gamma)
    # midpoint quadrature over 128 blocks: second order in the block width (1/128 of the schedule); measured
    # ≤ 7.5e-4 on drops up to 0.9 (WSD's fast cool-down is the worst case), so 2e-3 leaves margin
    assert np.max(np.abs(drop_term(schedule_terms(lr, steps, 128), kappa, beta, gamma) - exact)) < 2e-3
    # the tolerance tells parameters 5% apart: a β off by 5% fails the same check (unless the response is
    # saturated, as at κ = 5, where it is ≈ 1 whatever β)
    if kappa < 1:
        assert np.max(np.abs(drop_term(schedule_terms(lr, steps, 128), kappa, 1.05 * beta, gamma) - exact)) > 2e-3


def test_constant_lr_has_no_drop() -> None:
    lr = lr_schedule(SimSpec(schedule="constant", steps=4000))
    terms = schedule_terms(lr, np.arange(100, 4001, 100))
    assert not terms.decays and np.all(drop_term(terms, 0.1, 0.6, 0.6) == 0)


def make_series(schedule: str, steps: int, peak: float, size: float, rng: np.random.Generator,
                noise: float = 0.003) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lr, checkpoint steps, true proxy, noisy proxy) of a run following the law with :data:`SHAPE`."""
    lr = lr_schedule(SimSpec(schedule=schedule, steps=steps)) * peak / 1e-3  # type: ignore[arg-type]
    st = np.linspace(steps / 40, steps, 40).round().astype(int)
    st = st[st > int(np.argmax(lr))]
    l0, a, alpha = 0.8 + 0.9 * size**-0.35, 0.45 * size**0.05, 0.5 - 0.02 * np.log2(size)
    true = mpl(l0, a * peak**-alpha, alpha, SHAPE, schedule_terms(lr, st))
    return lr, st, true, true * np.exp(noise * rng.standard_normal(st.size))


@pytest.fixture(scope="module")
def shared() -> object:
    rng = np.random.default_rng(0)
    series = []
    for i, (sched, steps, peak, size) in enumerate([("cosine", 3000, 2e-3, 1), ("wsd", 3600, 1.7e-3, 2),
                                                    ("cosine", 5000, 1.2e-3, 8), ("wsd", 6000, 1e-3, 16)]):
        lr, st, _, y = make_series(sched, steps, peak, size, rng)
        series.append(LawSeries(f"r{i}", y, schedule_terms(lr, st)))
    return fit_shared_shape(series)


def test_shared_fit_recovers_the_drop_ratio_and_each_runs_exponent(shared) -> None:
    assert shared is not None and len(shared.spread) == 4 and shared.spread_scale == pytest.approx(np.sqrt(3))
    # (C, β, γ) lie on a ridge (nearly the same curves), so only what the forecasts depend on is checked
    assert shared.shape.drop_ratio == pytest.approx(SHAPE.drop_ratio, rel=0.2)
    true_alpha = [0.5 - 0.02 * np.log2(s) for s in (1, 2, 8, 16)]
    np.testing.assert_allclose(shared.run_params[:, 2], true_alpha, atol=0.03)
    assert np.all(shared.r2 > 0.99) and np.all(shared.sigma < 0.006)  # the noise was 0.003


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_transferred_law_forecasts_the_final_proxy_from_a_tenth_of_a_larger_run(shared, schedule: str) -> None:
    rng = np.random.default_rng(1)
    lr, st, true, y = make_series(schedule, 8000, 1e-3, 32, rng)
    early = st <= 800
    assert early.sum() >= 3
    prior = AlphaPrior(float(np.mean(shared.run_params[:, 2])), 0.05)
    fit_terms, pred_terms = schedule_terms(lr, st[early]), schedule_terms(lr, st)
    tf = fit_transfer(y[early], fit_terms, pred_terms, shared.shape, shared.spread, shared.spread_scale, prior,
                      0.003, 200, rng)
    assert tf is not None
    last_value_error = abs(y[early][-1] - true[-1])
    assert last_value_error > 0.3
    # within 0.06 (the proxy spans ~1.7 over the run): the decay shape came from smaller, shorter runs
    assert abs(tf.point[-1] - true[-1]) < 0.06
    lo, hi = np.nanpercentile(tf.replicates[:, -1], [2.5, 97.5])
    assert lo < true[-1] < hi
    if schedule != "constant":
        # leaving out the drop size (B/A) misses the decay's drop: the ratio is what transfers the size
        no_drop = DecayShape(SHAPE.C, SHAPE.beta, SHAPE.gamma, 0.0)
        tf0 = fit_transfer(y[early], fit_terms, pred_terms, no_drop, (), 1.0, prior, 0.003, 10, rng)
        assert abs(tf0.point[-1] - true[-1]) > 2 * abs(tf.point[-1] - true[-1]) + 0.05


def test_transfer_refuses_bad_series() -> None:
    lr = lr_schedule(SimSpec(steps=1000))
    terms = schedule_terms(lr, np.array([100, 200, 300]))
    rng = np.random.default_rng(0)
    prior = AlphaPrior(0.5, 0.1)
    assert fit_transfer(np.array([1.0, np.nan, 0.9]), terms, terms, SHAPE, (), 1.0, prior, 0.01, 5, rng) is None
    assert fit_transfer(np.array([1.0, -1.0, 0.9]), terms, terms, SHAPE, (), 1.0, prior, 0.01, 5, rng) is None


def test_run_drop_uses_each_runs_peak_lr() -> None:
    """C is in raw LR units: the same shape on a schedule with twice the peak gives κ = C·η_p^(1−γ)."""
    lr = lr_schedule(SimSpec(steps=2000))
    steps = np.arange(200, 2001, 200)
    t1, t2 = schedule_terms(lr, steps), schedule_terms(2 * lr, steps)
    np.testing.assert_allclose(run_drop(t2, SHAPE), drop_term(t2, SHAPE.C * (2 * lr.max()) ** 0.4, 0.6, 0.6))
    assert not np.allclose(run_drop(t1, SHAPE), run_drop(t2, SHAPE))
