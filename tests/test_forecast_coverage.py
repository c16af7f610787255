"""Interval coverage on simulated held-out runs, after the conformal correction (leave one run out)."""

from __future__ import annotations

import numpy as np

from evalcast.forecast import ClusterConfig, ForecastConfig, coverage_interval, forecast_task, prepare_references
from evalcast.forecast.simfamily import SimFamily, default_runs, simulate_family


def test_80_percent_intervals_cover_held_out_runs_near_nominal() -> None:
    """A family of five runs (per-question spread, so the fitted sigmoid is only an approximation), each run
    forecast from 10%, 25% and 50% of its budget with the other four as references; scored against its
    measured final pass@1. With 15 cases the binomial SD of an 80% coverage is 0.10: the observed rate must
    lie within about two of them of nominal, and the Clopper–Pearson interval must contain 0.8."""
    cfg = ForecastConfig(n_bootstrap=60, clusters=ClusterConfig(enabled=False))
    hits, n, errors = 0, 0, []
    for seed in (1,):
        runs = simulate_family(SimFamily(question_spread=0.5), default_runs(seed))
        for target in runs:
            refset = prepare_references([r.reference() for r in runs if r is not target], cfg)
            for fraction in (0.1, 0.25, 0.5):
                tf = forecast_task(target.at(fraction), cfg, refset, target.spec.n_params)
                if tf.status != "ok":
                    continue
                lo, hi = tf.forecast.interval80
                n += 1
                hits += lo <= target.final <= hi
                errors.append(abs(tf.forecast.final - target.final))
    assert n >= 12  # published in at least 80% of the 15 cases
    assert 0.6 <= hits / n <= 1.0 - 0.5 / n  # not every case: intervals that always cover are too wide
    lo, hi = coverage_interval(hits, n)
    assert lo <= 0.8 <= hi
    assert float(np.mean(errors)) < 0.05
