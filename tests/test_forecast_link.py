"""The cross-run accuracy link: shared slope, run shifts with their spread, and the target's posterior shift."""

from __future__ import annotations

import numpy as np
import pytest

from evalcast.forecast.link import LinkData, fit_shared_link, target_draws
from evalcast.forecast.prepare import binomial_se

K, MID, TAU, N = -4.0, 1.55, 0.1, 800


def run_anchors(name: str, shift: float, y: np.ndarray, rng: np.random.Generator) -> LinkData:
    p = 1.0 / (1.0 + np.exp(-K * (y - MID - shift)))
    acc = rng.binomial(N, p) / N
    n = np.full(y.size, float(N))
    return LinkData(name, y, acc, binomial_se(acc, n), n)


@pytest.fixture(scope="module")
def family() -> tuple[list[LinkData], np.ndarray]:
    rng = np.random.default_rng(3)
    shifts = TAU * rng.standard_normal(10)
    runs = [run_anchors(f"r{i}", s, np.linspace(3.0, 1.2 + 0.05 * i, 9), rng) for i, s in enumerate(shifts)]
    return runs, shifts


def test_shared_link_recovers_slope_centre_and_shift_spread(family) -> None:
    runs, shifts = family
    link = fit_shared_link(runs, 0.0, 1.0, model_error=0.02, free_ceiling_above=0.5, min_shift_sd=0.0)
    assert link is not None
    assert link.k / link.scale == pytest.approx(K, rel=0.15)
    assert link.center + link.scale * link.mu == pytest.approx(MID + shifts.mean(), abs=0.05)
    # the data can only show the spread of the ten planted shifts (their SD, here 0.17 for τ = 0.1); each
    # shift is measured to ~0.01 (nine anchors of 800 samples), so τ lands within 0.03 of it
    assert link.scale * link.tau == pytest.approx(float(np.std(shifts, ddof=1)), abs=0.03)
    fitted = np.array([link.shifts[r.run] for r in runs]) * link.scale
    assert np.corrcoef(fitted, shifts)[0, 1] > 0.9


def test_min_shift_sd_floors_the_spread(family) -> None:
    r = family[0][0]
    twins = [r, LinkData("twin", r.y, r.acc, r.se, r.n)]  # identical runs: the data show no spread at all
    link = fit_shared_link(twins, 0.0, 1.0, model_error=0.02, free_ceiling_above=0.5, min_shift_sd=0.05)
    assert link is not None and link.tau == pytest.approx(0.05)


def test_no_anchor_off_the_floor_fits_no_link() -> None:
    y = np.linspace(3.0, 2.5, 6)
    floor = LinkData("r", y, np.zeros(6), binomial_se(np.zeros(6), np.full(6, 200.0)), np.full(6, 200.0))
    assert fit_shared_link([floor, floor], 0.0, 1.0, model_error=0.02, free_ceiling_above=0.5,
                           min_shift_sd=0.05) is None


def test_target_shift_shrinks_to_the_prior_without_information_and_follows_informative_anchors(family) -> None:
    runs, _ = family
    link = fit_shared_link(runs, 0.0, 1.0, model_error=0.02, free_ceiling_above=0.5, min_shift_sd=0.05)
    rng = np.random.default_rng(0)
    true_shift = 0.15  # 1.5 τ away from the population
    # anchors still on the floor: they only say the shift is not very negative
    floor_y = np.array([3.0, 2.9, 2.8])
    floor = run_anchors("t", true_shift, floor_y, rng)
    reps = np.broadcast_to(floor.acc, (400, 3))
    prior_only = target_draws(link, np.zeros(0), np.zeros((400, 0)), np.zeros(0), 400, rng)
    on_floor = target_draws(link, floor_y, reps, floor.se, 400, rng)
    assert on_floor.z0_mean == pytest.approx(prior_only.z0_mean, abs=0.5 * link.tau + 0.01)
    assert on_floor.z0_sd > 0.7 * prior_only.z0_sd
    # anchors across the rise pin the shift down, near the truth
    rise_y = np.linspace(2.2, 1.5, 6)
    rise = run_anchors("t", true_shift, rise_y, rng)
    informed = target_draws(link, rise_y, np.broadcast_to(rise.acc, (400, 6)), rise.se, 400, rng)
    assert informed.z0_sd < 0.5 * prior_only.z0_sd
    true_z0 = (MID + true_shift - link.center) / link.scale
    assert abs(informed.z0_mean - true_z0) < abs(prior_only.z0_mean - true_z0)
    assert informed.z0_mean * link.scale + link.center == pytest.approx(MID + true_shift, abs=0.05)
