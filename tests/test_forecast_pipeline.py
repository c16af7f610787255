"""End-to-end behaviour of forecast_task on simulated runs with known ground truth."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from evalcast.forecast import (
    Anchor,
    Checkpoints,
    ClusterConfig,
    ForecastConfig,
    Reason,
    TaskForecast,
    TaskInputs,
    forecast_run,
    forecast_task,
)
from evalcast.forecast.clusters import cluster_questions
from evalcast.forecast.prepare import build_anchors
from evalcast.forecast.simulate import SimSpec, simulate_run

FAST = ForecastConfig(n_bootstrap=100, clusters=ClusterConfig(enabled=False))


def test_two_step_forecast_from_a_quarter_of_a_constant_lr_run() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=11))
    tf = forecast_task(run.at(0.25), FAST)
    assert tf.status == "ok", tf.message
    assert tf.proxy is not None and tf.proxy.name == "nll"
    assert tf.forecast.final == pytest.approx(run.final, abs=0.06)
    lo, hi = tf.forecast.interval95
    assert lo < tf.forecast.final < hi
    # the loss-based baseline maps a different loss curve onto accuracy and misses by more here
    loss = tf.baselines["loss_twostep"]
    assert loss.ok and abs(loss.final - run.final) > abs(tf.forecast.final - run.final)


def test_annealing_law_beats_a_power_law_in_compute_on_a_cosine_run() -> None:
    run = simulate_run(SimSpec(schedule="cosine", seed=5, proxy_noise=0.001))
    errors = {}
    for law in ("annealing", "power"):
        tf = forecast_task(run.at(0.5), replace(FAST, law=law))
        assert tf.status == "ok", tf.message
        assert f"law:{law}" in tf.forecast.flags
        errors[law] = abs(tf.forecast.final - run.final)
    assert errors["annealing"] < 0.03 < errors["power"]


def test_curve_runs_from_first_checkpoint_to_budget_with_ordered_bands() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=2))
    fc = forecast_task(run.at(0.5), FAST).forecast
    assert fc.ok and fc.curve is not None
    x = np.array(fc.curve.x)
    assert x[0] == pytest.approx(float(run.inputs.checkpoints.x[0]))
    assert x[-1] == pytest.approx(run.inputs.checkpoints.x_end)
    lo95, lo80, mean, hi80, hi95 = (np.array(getattr(fc.curve, k)) for k in ("lo95", "lo80", "mean", "hi80", "hi95"))
    assert np.all(lo95 <= lo80 + 1e-12) and np.all(lo80 <= hi80) and np.all(hi80 <= hi95 + 1e-12)
    assert mean[-1] == pytest.approx(fc.final)
    assert np.all(np.diff(mean) >= -1e-9)  # accuracy rises with compute


def test_bootstrap_80_percent_intervals_cover_at_roughly_nominal_rate() -> None:
    cfg = replace(FAST, n_bootstrap=60)
    hits, n = 0, 0
    for seed in range(40):
        run = simulate_run(SimSpec(schedule="constant", seed=100 + seed, n_checkpoints=20,
                                   anchors=(0.1, 0.2, 0.3, 0.4, 0.5)))
        inputs = replace(run.at(0.5), proxies={"nll": np.asarray(run.inputs.proxies["nll"])[:10]}, losses={})
        tf = forecast_task(inputs, cfg)
        if tf.status != "ok":
            continue
        n += 1
        lo, hi = tf.forecast.interval80
        hits += lo <= run.final <= hi
    assert n >= 30
    assert 0.6 <= hits / n <= 0.97


def test_backtest_picks_the_informative_proxy_over_noise() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=3))
    inputs = replace(run.at(1.0), proxies={"noise": run.inputs.proxies["noise"],
                                           "nll.rarity": run.inputs.proxies["nll"]})
    tf = forecast_task(inputs, FAST)
    assert tf.proxy is not None and tf.proxy.method in ("backtest", "only_candidate")
    assert tf.proxy.name == "nll.rarity"


def test_backtest_scores_noise_worse_when_it_trends() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=4))
    x = np.asarray(run.inputs.checkpoints.x)
    rng = np.random.default_rng(0)
    trending_noise = np.log(x) + 0.8 * rng.standard_normal(x.size)  # trends, but says nothing per checkpoint
    inputs = replace(run.inputs, proxies={"nll": run.inputs.proxies["nll"], "junk": trending_noise})
    tf = forecast_task(inputs, FAST)
    assert tf.proxy.name == "nll"
    if tf.proxy.method == "backtest":
        assert tf.proxy.scores["nll"] < tf.proxy.scores["junk"]


def test_too_few_anchors_falls_back_to_the_default_proxy() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=6, anchors=(0.2, 0.5, 0.9)))
    tf = forecast_task(run.inputs, FAST)
    assert tf.proxy.method == "default" and tf.proxy.name == "nll"
    assert "too few for a backtest" in tf.proxy.message


def test_proxy_direction_is_learned_not_taken_from_its_name() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=7))
    flipped = -np.asarray(run.inputs.proxies["nll"])  # a rising, unbounded series named like a loss
    tf = forecast_task(replace(run.at(0.5), proxies={"entropy": flipped[: len(run.at(0.5).checkpoints.x)]}), FAST)
    ref = forecast_task(replace(run.at(0.5), proxies={"nll": run.at(0.5).proxies["nll"]}), FAST)
    assert tf.status == "ok" and tf.data is not None and tf.data.sign == -1.0
    assert tf.forecast.final == pytest.approx(ref.forecast.final, abs=0.05)


def test_cod_clusters_recover_planted_difficulties() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=8, difficulty=(-1.5, 0.5, 2.5), n_questions=150, samples=8))
    anchors, _ = build_anchors(run.inputs.anchors, len(run.inputs.checkpoints.x))
    labels, method, _ = cluster_questions(anchors.per_question, anchors.qids, (), None, ClusterConfig())
    planted = np.repeat([0, 1, 2], 50)
    assert method == "meanshift"
    kept = labels >= 0
    assert kept.mean() > 0.9
    # each found cluster is (nearly) pure in planted difficulty
    for k in np.unique(labels[kept]):
        counts = np.bincount(planted[labels == k], minlength=3)
        assert counts.max() / counts.sum() > 0.9


def test_cluster_breakdown_aggregates_by_size() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=9, difficulty=(-1.5, 0.5, 2.5), samples=8))
    tf = forecast_task(run.inputs, replace(FAST, clusters=ClusterConfig()))
    cb = tf.clusters
    assert cb is not None and len(cb.clusters) >= 2
    assert sum(c.share for c in cb.clusters) == pytest.approx(1.0)
    if cb.aggregate.ok and all(c.forecast.ok for c in cb.clusters):
        assert cb.aggregate.final == pytest.approx(sum(c.share * c.forecast.final for c in cb.clusters), abs=1e-9)


def test_few_anchors_use_quantile_bins_and_flag_non_emergent_clusters() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=10, anchors=(0.3, 0.6, 1.0), difficulty=(-3.0, 9.0)))
    tf = forecast_task(run.inputs, replace(FAST, clusters=ClusterConfig()))
    cb = tf.clusters
    assert cb is not None and cb.method == "quantile_bins"
    stuck = [c for c in cb.clusters if not c.emergent]
    assert stuck and all("non_emergent" in c.forecast.flags for c in stuck)


def test_round_trip_through_json() -> None:
    run = simulate_run(SimSpec(seed=12))
    tf = forecast_task(run.at(0.5), replace(FAST, clusters=ClusterConfig()))
    d = tf.to_dict()
    back = TaskForecast.from_dict(json.loads(json.dumps(d, allow_nan=False)))
    assert back.to_dict() == d
    assert back.forecast.final == tf.forecast.final and back.proxy == tf.proxy


def test_forecast_run_keys_by_task() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=13))
    other = replace(run.inputs, name="other")
    out = forecast_run([run.inputs, other], FAST)
    assert set(out) == {"sim", "other"} and all(isinstance(v, TaskForecast) for v in out.values())


def test_anchor_accuracies_without_per_question_outcomes_still_forecast() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=14))
    plain = [Anchor(a.index, a.accuracy, a.n_questions) for a in run.inputs.anchors]
    tf = forecast_task(replace(run.at(0.5), anchors=[a for a in plain if a.index < 20], probe_per_question=None),
                       replace(FAST, clusters=ClusterConfig()))
    assert tf.status == "ok" and tf.clusters is None


def test_inputs_without_a_schedule_use_the_power_law() -> None:
    run = simulate_run(SimSpec(schedule="constant", seed=15))
    ck = run.inputs.checkpoints
    tf = forecast_task(replace(run.at(0.5), checkpoints=Checkpoints(np.asarray(ck.x)[:20], np.asarray(ck.step)[:20],
                                                                    ck.x_end)), FAST)
    assert tf.data is not None and tf.data.law == "power"
    assert isinstance(tf, TaskForecast) and tf.reason != Reason.INTERNAL_ERROR.value


def test_task_inputs_are_plain_data() -> None:
    inputs = TaskInputs("t", Checkpoints([1.0, 2.0], [1, 2], 10.0), {"nll": [1.0, 0.9]})
    assert forecast_task(inputs).reason == Reason.TOO_FEW_POINTS.value
