"""Forecasts with reference runs on a simulated family: recovery, proxy choice, refusals and safety."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import binomtest

from evalcast.forecast import (
    Anchor,
    Checkpoints,
    ClusterConfig,
    ForecastConfig,
    GateConfig,
    Reason,
    ReferenceConfig,
    ReferenceRun,
    TaskForecast,
    TaskInputs,
    coverage_interval,
    forecast_task,
    prepare_references,
)
from evalcast.forecast.calibration import conformal_quantile
from evalcast.forecast.references import proxy_scale, to_scale
from evalcast.forecast.simfamily import SimFamily, SimRun, default_runs, simulate_family
from evalcast.forecast.simulate import SimSpec, simulate_run

FAST = ForecastConfig(n_bootstrap=60, clusters=ClusterConfig(enabled=False))
FAMILY = SimFamily()  # exact link (no per-question spread), shared decay shape


@pytest.fixture(scope="module")
def family() -> list:
    return simulate_family(FAMILY, default_runs(0))


@pytest.fixture(scope="module")
def target(family) -> object:
    return family[3]  # 160M, cosine


@pytest.fixture(scope="module")
def refset(family, target) -> object:
    return prepare_references([r.reference() for r in family if r is not target], FAST)


def test_references_recover_the_link_and_the_drop_ratio(refset) -> None:
    assert not refset.problems
    model = refset.models[0]
    link = model.link
    # the link is fitted on a standardised proxy: back on the proxy's own scale it is the family's
    assert link.k / link.scale == pytest.approx(FAMILY.link_k, rel=0.25)
    assert link.center + link.scale * link.mu == pytest.approx(FAMILY.link_mid, abs=0.1)
    assert model.shared is not None
    assert model.shared.shape.drop_ratio == pytest.approx(FAMILY.shape.drop_ratio, rel=0.3)


def test_proxy_is_chosen_by_forecasting_the_other_runs(refset) -> None:
    choice = refset.choice
    assert choice.method == "reference_backtest" and choice.name in ("nll", "prob")
    # 'drift' tracks accuracy perfectly inside every run, but its offset differs between runs
    assert choice.scores["drift"] > choice.scores[choice.name]
    assert "noise" not in {m.proxy for m in refset.models}


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_forecast_from_early_in_training(target, refset, fraction: float) -> None:
    tf = forecast_task(target.at(fraction), FAST, refset, target.spec.n_params)
    assert tf.status == "ok", tf.message
    fc = tf.forecast
    last = tf.baselines["last_value"]
    assert abs(fc.final - target.final) < 0.1 < abs(last.final - target.final)
    assert fc.interval95[0] <= target.final <= fc.interval95[1]
    assert {"prior_only", "pilot_ratio", "within_run", "loss_twostep", "compute_sigmoid"} <= set(tf.baselines)
    assert tf.proxy.name == refset.choice.name and tf.data.law.startswith("multipower:")
    assert any(f.startswith("conformal:") for f in fc.flags)
    back = TaskForecast.from_dict(json.loads(json.dumps(tf.to_dict(), allow_nan=False)))
    assert back.to_dict() == tf.to_dict()


def test_floor_only_anchors_are_refused_without_references_and_forecast_with_them(target, refset) -> None:
    early = target.at(0.25)
    floor = [Anchor(a.index, 0.0, a.n_questions) for a in early.anchors]
    inputs = replace(early, anchors=floor)
    alone = forecast_task(inputs, FAST)
    assert alone.reason == Reason.LINK_EXTRAPOLATION.value and "left the floor" in alone.message
    assert forecast_task(inputs, FAST, refset).status == "ok"


def test_a_steep_link_just_off_the_floor_is_refused_not_published_as_certain() -> None:
    """The reported failure: a cosine run at 55%, four anchors of which the last two just left the floor, a
    steep sigmoid, the end-of-budget proxy far beyond them. Published, it read 0.999 [0.99, 1.00]."""
    run = simulate_run(SimSpec(schedule="cosine", seed=3, proxy_noise=0.002, n_checkpoints=20))
    cut = run.at(0.55)
    n = len(cut.checkpoints.x)
    anchors = [Anchor(i, a, 400) for i, a in zip(range(n - 4, n), (0.0, 0.0, 0.03, 0.13))]
    inputs = replace(cut, anchors=anchors, probe_accuracy=None, probe_per_question=None,
                     proxies={"nll": cut.proxies["nll"]}, losses={})
    tf = forecast_task(inputs, replace(FAST, n_bootstrap=200))
    assert tf.reason == Reason.LINK_EXTRAPOLATION.value
    # the gate is what catches it: switched off, the confident saturated forecast comes back
    off = forecast_task(inputs, replace(FAST, n_bootstrap=200, gates=GateConfig(max_link_extrapolation=float("inf"))))
    assert off.status == "ok" and off.forecast.final > 0.95 and off.forecast.interval80[0] > 0.9


def test_references_of_another_task_or_compute_axis_are_refused(target, family) -> None:
    others = [r for r in family if r is not target]
    wrong_task = [ReferenceRun(r.spec.name, replace(r.inputs, name="other_task")) for r in others]
    tf = forecast_task(target.at(0.5), FAST, wrong_task)
    assert tf.reason == Reason.REFERENCE_MISMATCH.value and "other_task" in tf.message
    assert tf.baselines  # the within-run baselines still come back
    ck = target.inputs.checkpoints
    in_steps = replace(target.inputs, checkpoints=Checkpoints(np.asarray(ck.step, dtype=float), ck.step,
                                                              float(target.spec.steps), ck.schedule))
    refs = [r.reference() for r in others]
    tf = forecast_task(replace(in_steps, checkpoints=replace(in_steps.checkpoints)), FAST, refs)
    assert tf.reason == Reason.REFERENCE_MISMATCH.value and "steps" in tf.message and "tokens" in tf.message
    mc = [ReferenceRun(r.spec.name, replace(r.inputs, chance=0.25)) for r in others]
    assert "chance" in forecast_task(target.at(0.5), FAST, mc).message
    prepared = prepare_references(wrong_task, FAST)
    assert not prepared.problems  # consistent among themselves; only this target is another task
    assert forecast_task(target.at(0.5), FAST, prepared).reason == Reason.REFERENCE_MISMATCH.value


def test_without_a_decayed_reference_a_decaying_run_falls_back_to_its_own_forecast() -> None:
    runs = simulate_family(FAMILY, [SimRun(f"c{i}", 2e7 * 2**i, "constant", 3000, 1e-3, i) for i in range(3)]
                           + [SimRun("target", 1.6e8, "cosine", 4000, 1e-3, 9)])
    tf = forecast_task(runs[-1].at(0.5), FAST, [r.reference() for r in runs[:-1]])
    assert "references:fallback:annealing_unobserved" in tf.forecast.flags
    assert "prior_only" in tf.baselines and "within_run" in tf.baselines


BAD_REFERENCES = {
    "none in list": [None],
    "no task": [ReferenceRun("a", None)],  # type: ignore[arg-type]
    "empty": [],
    "nan proxies": "nan",
    "duplicate names": "dup",
}


@pytest.mark.parametrize("name", list(BAD_REFERENCES))
def test_bad_references_never_raise(family, target, name: str) -> None:
    refs = BAD_REFERENCES[name]
    if refs == "nan":
        refs = [ReferenceRun(r.spec.name, replace(r.inputs, proxies={"nll": np.full(40, np.nan)})) for r in family[:3]]
    elif refs == "dup":
        refs = [ReferenceRun("same", r.inputs) for r in family[:3]]
    tf = forecast_task(target.at(0.5), FAST, refs)  # type: ignore[arg-type]
    assert isinstance(tf, TaskForecast) and tf.reason != Reason.INTERNAL_ERROR.value, tf.message
    assert tf.status in ("ok", "refused") and tf.reason in {r.value for r in Reason} | {""}
    tf.to_dict()


def test_configuration_errors_raise_at_construction() -> None:
    for bad in ({"backtest_fractions": ()}, {"backtest_fractions": (0.1, 1.0)}, {"finished_fraction": 0.2},
                {"min_conformal_scores": 2}, {"schedule_blocks": 0}, {"min_shift_sd": -1.0}):
        with pytest.raises(ValueError, match="ReferenceConfig"):
            ReferenceConfig(**bad)
    with pytest.raises(ValueError, match="max_link_extrapolation"):
        GateConfig(max_link_extrapolation=-0.5)


@pytest.mark.parametrize("hits, n", [(0, 10), (8, 10), (10, 10), (41, 50)])
def test_coverage_interval_is_clopper_pearson(hits: int, n: int) -> None:
    ci = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="exact")
    assert coverage_interval(hits, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_conformal_quantile_needs_enough_scores() -> None:
    scores = np.array([0.3, -0.1, 0.2, 0.0])
    assert conformal_quantile(scores, 0.8) == 0.3  # ⌈5·0.8⌉ = 4th smallest
    assert np.isnan(conformal_quantile(scores, 0.95))  # ⌈5·0.95⌉ = 5 > 4 scores
    assert conformal_quantile(np.arange(9.0), 0.8) == 7.0  # ⌈10·0.8⌉ = 8th smallest


def test_proxy_scales_are_fixed_by_rule_across_runs() -> None:
    x = np.arange(1.0, 21.0)
    falling, rising = 2.0 + 1.0 / x, 1.0 - 0.5 / x
    assert proxy_scale([(falling, x), (falling * 1.1, x)], 5) == "identity"
    assert proxy_scale([(np.exp(-falling), x)] * 2, 5) == "neg_log"  # a probability: −log gives the loss back
    np.testing.assert_allclose(to_scale("neg_log", np.exp(-falling)), falling)
    assert proxy_scale([(rising - 0.8, x)] * 2, 5) == "one_minus"  # a margin in [−1, 1)
    assert proxy_scale([(falling, x), (rising, x)], 5) is None  # runs disagree on the direction
    assert proxy_scale([(-falling, x)] * 2, 5) is None  # rising without a known bound: no shared scale
    assert np.isnan(to_scale("one_minus", np.array([1.0, 1.5]))).all()  # not positive: undefined


@pytest.mark.parametrize("refs", [[None], [ReferenceRun("a", None)], 5, [ReferenceRun("a", TaskInputs(  # type: ignore[arg-type]
    "t", Checkpoints([2.0, 1.0], [1, 2], 3.0), {"nll": [1.0, 2.0]}))]])
def test_prepare_references_lists_problems_instead_of_raising(refs: object) -> None:
    prepared = prepare_references(refs, FAST)  # type: ignore[arg-type]
    assert prepared.problems and all(isinstance(p, str) and p for p in prepared.problems)
