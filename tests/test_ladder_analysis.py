"""The ladder analysis helpers that keep its figures honest: rankings over one point set with constant
metrics scored 0, probe scoring only at saves it was not trained at, drop-detection delays."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ladder.drop_study import choose
from benchmarks.ladder.measures import leaves_band, nanmean, orientation, rank_score, spearman
from benchmarks.ladder.probe_study import group_rate, schedule
from benchmarks.ladder.proxies import PROXIES, best, ranking


@dataclass
class _Series:
    """What ``ranking`` reads of a run: compute per save, true pass@1 and metrics per group (the analysis's
    own data type stood in for, no framework involved)."""

    compute: np.ndarray
    truth: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "run"

    def true_pass(self, group: str) -> np.ndarray:
        return self.truth

    def metric(self, group: str, name: str) -> np.ndarray:
        return self.metrics.get(name, np.full(len(self.compute), np.nan))


def _runs() -> list[_Series]:
    """Three runs over one compute range; at the first save every run's truth is 0 (cannot be ranked); `nll`
    ranks them right everywhere; `greedy_match` is 0 for all of them except at the last save."""
    compute = np.array([1.0, 2.0, 4.0, 8.0])
    out = []
    for k, skill in enumerate((0.1, 0.2, 0.3)):
        truth = np.array([0.0, skill, 2 * skill, 3 * skill])
        greedy = np.array([0.0, 0.0, 0.0, skill])
        out.append(_Series(compute, truth, {"nll": 3.0 - truth, "greedy_match": greedy, "val_loss": np.full(4, 1.0)},
                           name=f"r{k}"))
    return out


def test_rank_score_counts_a_constant_metric_as_zero_and_skips_only_unrankable_truth() -> None:
    assert rank_score([1, 1, 1], [0.1, 0.2, 0.3]) == 0.0
    assert rank_score([1, math.nan, 2], [0.1, 0.2, 0.3]) == 0.0
    assert rank_score([1, 2, 3], [0.1, 0.2, 0.3]) == 1.0
    assert math.isnan(rank_score([1, 2, 3], [0.0, 0.0, 0.0]))
    assert math.isnan(spearman([1, 1, 1], [0.1, 0.2, 0.3]))  # the plain helper would drop the point instead


def test_ranking_averages_every_metric_over_the_same_points() -> None:
    out = ranking(_runs(), points=4, signs={})  # type: ignore[arg-type]
    assert out["points_used"]["all"] == 3  # the all-zero first point is left out for every metric
    mean = out["mean"]["all"]
    assert mean["nll"] == 1.0
    assert mean["val_loss"] == 0.0  # constant everywhere: 0, never NaN
    assert np.isclose(mean["greedy_match"], 1 / 3)  # 0, 0, 1 over the same three points
    # Companion: the old way (NaN-dropping Spearman, then a NaN-skipping mean) averages greedy_match over the
    # one point where it varies and reports it as perfect: the figure this guards against.
    old = nanmean(spearman([orientation("greedy_match") * np.interp(np.log(c), np.log(r.compute),
                                                                      r.metric("all", "greedy_match"))
                            for r in _runs()], [np.interp(np.log(c), np.log(r.compute), r.truth) for r in _runs()])
                  for c in out["compute"])
    assert old == 1.0


def test_best_proxy_ignores_nan_and_breaks_ties_in_list_order() -> None:
    assert best({"nll": 0.5, "top1": math.nan, "prob": 0.7}) == "prob"
    assert best({"nll": 0.7, "top1": 0.7}) == "nll"
    assert best({m: math.nan for m in PROXIES}) is None


def test_probe_protocols_never_score_a_save_they_trained_on() -> None:
    anchors = np.arange(12) % 2 == 0
    fraction = (np.arange(12) + 1) / 12
    for name in ("rolling", "first_third"):
        labelled, scored = schedule(anchors, fraction, name)
        assert not (labelled & scored).any()
        assert scored.any() and np.argmax(scored) > np.argmax(labelled)
    labelled, scored = schedule(anchors, fraction, "rolling")
    assert (labelled == anchors).all() and (scored == ~anchors).all()
    labelled, scored = schedule(anchors, fraction, "first_third")
    assert labelled.sum() == 4 and scored.sum() == 8


def test_group_rate_baseline_uses_only_labelled_questions() -> None:
    y = np.array([1, 0, 1, 1, 0, 0], dtype=float)
    labelled = np.array([True, True, False, True, False, False])
    strata = np.array(["a", "a", "a", "b", "b", "c"])
    p = group_rate(y, labelled, strata)
    assert p.tolist() == [0.5, 0.5, 0.5, 1.0, 1.0, 2 / 3]  # "c" has no labelled question: the overall rate
    # Companion: had the unlabelled outcomes leaked in, stratum "a" would read 2/3 and "b" 1/2.
    assert group_rate(y, np.ones(6, bool), strata)[[0, 3]].tolist() == [2 / 3, 0.5]


def test_leaves_band_finds_the_first_save_below_the_pre_change_band() -> None:
    improving = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5])
    assert leaves_band(improving, start=3, window=3) is None
    falling = np.array([0.1, 0.3, 0.2, 0.25, 0.22, 0.15, 0.05])
    assert leaves_band(falling, start=4, window=3) == 5  # 0.15: the first below min(0.3, 0.2, 0.25)
    assert leaves_band(np.array([0.3, 0.3, 0.3, 0.29]), start=3, window=3) == 3
    assert leaves_band(falling, start=2, window=3) is None  # band not fully known


def test_choose_takes_the_fastest_proxy_without_a_false_alarm() -> None:
    metrics = {f"sort/{m}": {"delay_saves": None, "control_delay_saves": None, "spearman_after": math.nan}
               for m in PROXIES}
    metrics["sort/top1"] = {"delay_saves": 1, "control_delay_saves": 4, "spearman_after": 0.9}  # false alarm
    metrics["sort/nll"] = {"delay_saves": 2, "control_delay_saves": None, "spearman_after": 0.5}
    metrics["sort/prob"] = {"delay_saves": 2, "control_delay_saves": None, "spearman_after": 0.8}
    assert choose({"task": "sort", "metrics": metrics}) == "prob"
    metrics["sort/top1"]["control_delay_saves"] = None  # companion: without the control's alarm it would win
    assert choose({"task": "sort", "metrics": metrics}) == "top1"
