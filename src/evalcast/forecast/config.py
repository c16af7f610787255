"""Configuration of forecasts: what the monitor forecasts, the forecasters' settings, their quality gates.

The methods behind each setting are described in ``docs/methods.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from evalcast.validation import Rule, above, at_least, between, check_config, each, non_empty

LawChoice = Literal["auto", "power", "annealing"]
AccuracySource = Literal["anchors", "probe", "both"]
ClusterLaw = Literal["twostep", "cod"]
LINKS = ("logit", "probit", "cloglog", "loglog")


@dataclass(frozen=True)
class GateConfig:
    """Quality gates: a forecast failing any of them is refused with a reason."""

    min_points: int = 5
    """Fewest proxy points in the fit window."""
    min_compute_range: float = 3.0
    """Smallest ratio of the last to the first fitted compute value."""
    min_anchors: int = 3
    """Fewest accuracy points (anchors; probe points when the source is the probe only)."""
    min_anchor_range_se: float = 2.0
    """Smallest anchor accuracy range, in binomial standard errors."""
    min_r2: float = 0.9
    """Smallest in-window R² of the proxy fit."""
    max_interval80_frac: float = 0.5
    """Widest allowed 80% interval of the final value, as a fraction of (u − g)."""
    max_proxy_interval_frac: float = 0.25
    """Widest allowed 80% interval of the final *proxy* value, as a fraction of the proxy's in-window
    range. The accuracy interval alone misses a proxy extrapolated into the sigmoid's flat top (all
    replicates near the ceiling, confidently wrong); this gate catches it (``docs/methods.md``)."""
    monotone_tol: float = 1e-3
    """Largest reversal of the forecast curve (accuracy units) still counted as monotone."""
    bound_rtol: float = 1e-3
    """How close (relative) to a bound an exponent or slope counts as "at" the bound."""
    min_bootstrap_success: float = 0.8
    """Smallest fraction of bootstrap replicates that must refit to a finite value."""
    refuse_unobserved_annealing: bool = True
    """Refuse while the LR decays only after the fit window (a WSD run before its cool-down): the loss
    drop of the decay cannot be estimated yet, so a forecast would silently leave it out. False
    publishes that conditional forecast, flagged ``annealing_unobserved``."""
    max_link_extrapolation: float = 1.0
    """Refuse (``link_extrapolation``) when the end-of-budget proxy lies beyond the proxy range over
    which the accuracy link was observed (the anchors'; with references, all reference anchors') by more
    than this multiple of that range, or when no anchor has left the floor yet (without references).
    There the sigmoid is pure extrapolation: a steep fit saturates and publishes a confident, wrong
    value. ``inf`` turns the gate off."""

    def __post_init__(self) -> None:
        check_config(self, min_points=at_least(2), min_compute_range=at_least(1), min_anchors=at_least(1),
                     min_anchor_range_se=at_least(0), min_r2=between(0, 1), max_interval80_frac=above(0),
                     max_proxy_interval_frac=above(0), monotone_tol=at_least(0), bound_rtol=at_least(0),
                     min_bootstrap_success=between(0, 1), max_link_extrapolation=at_least(0))


@dataclass(frozen=True)
class ClusterConfig:
    """Per-difficulty-cluster forecasts (COD-style)."""

    enabled: bool = True
    """Break each forecast down by difficulty cluster."""
    law: ClusterLaw = "twostep"
    """"twostep": each cluster's own sigmoid on the task proxy curve (follows the LR schedule);
    "cod": ``g + (1 − g)·exp(−a·C^(−b) − c)`` against compute."""
    bandwidth_quantile: float = 0.2
    """Quantile passed to ``sklearn.cluster.estimate_bandwidth``."""
    min_cluster_size: int = 5
    """Clusters smaller than ``max(min_cluster_size, min_cluster_frac·Q)`` are outliers."""
    min_cluster_frac: float = 0.05
    """See ``min_cluster_size``."""
    max_anchors_for_bins: int = 4
    """With this many anchors or fewer, use quantile bins of the first informative anchor instead."""
    n_bins: int = 3
    """Quantile bins used instead of clusters (see ``max_anchors_for_bins``)."""
    non_emergent_margin: float = 0.02
    """A cluster whose accuracy never exceeds ``g + margin`` is non-emergent (last value, flagged)."""
    probe_columns: int = 10
    """Probe checkpoints (evenly spaced) added to each question's anchor trajectory for clustering."""
    n_seeds: int = 10
    """MeanShift seeds: questions evenly spaced in mean pass rate (seeding every question costs far more)."""

    def __post_init__(self) -> None:
        check_config(self, bandwidth_quantile=between(0, 1, low_open=True), min_cluster_size=at_least(1),
                     min_cluster_frac=between(0, 1, high_open=True), max_anchors_for_bins=at_least(0),
                     n_bins=at_least(1), non_emergent_margin=at_least(0), probe_columns=at_least(0),
                     n_seeds=at_least(1))


DEFAULT_PROXIES = (
    "nll", "prob", "entropy", "top1", "top5", "log_rank", "recip_rank", "margin", "excess_surprisal", "bpb",
    "greedy_match", "answer_match", "pair_accuracy", "nll.rarity", "top1.rarity", "nll.answer", "top1.answer",
    "prob.traj", "top1.late", "mc_prob", "mc_prob_per_token", "mc_prob_per_byte", "mc_margin",
    "mc_margin_per_token", "mc_margin_per_byte",
)


@dataclass(frozen=True)
class ReferenceConfig:
    """Forecasts that use reference runs: other runs of the same task (pilots, other sizes, earlier runs)."""

    backtest_fractions: tuple[float, ...] = (0.1, 0.25, 0.5)
    """Budget fractions at which each finished reference is forecast from the others (leave one run out).
    Their errors choose the proxy and their interval misses give the conformal correction; a forecast
    made at fraction f uses the misses at the nearest of these fractions."""
    finished_fraction: float = 0.98
    """A reference's final value is known when it has an anchor at this fraction of its budget or later."""
    min_reference_decay: float = 0.5
    """A reference's decay shape (C, β, γ, B/A) is used only once its learning rate has fallen by this
    fraction of its peak by its last checkpoint; before that the drop of a decay is not identified."""
    schedule_blocks: int = 128
    """Blocks of the learning-rate schedule in the quadrature of the multi-power law's drop term."""
    min_shift_sd: float = 0.05
    """Smallest spread τ of the run-specific link shift, in units of the references' proxy range: a
    handful of references cannot show that runs share one link exactly."""
    alpha_prior_sd_min: float = 0.05
    """Smallest standard deviation of the prior on the target's exponent α taken from the references."""
    min_conformal_scores: int = 4
    """Fewest leave-one-run-out misses for a conformal correction at 80% (below it the interval is the
    bootstrap's own, flagged ``conformal:unavailable``)."""
    conformal: bool = True
    """Apply the conformal correction (False: publish the bootstrap intervals, for comparison)."""
    measurement_noise: bool = True
    """Add the binomial noise of the final measurement (one evaluation on the anchors' questions)."""
    max_candidates: int = 4
    """Most proxies compared by the leave-one-run-out backtest (the smoothest ones)."""
    min_target_points: int = 3
    """Fewest post-warm-up checkpoints of the target to fit its L0, A and α."""

    def __post_init__(self) -> None:
        check_config(self, backtest_fractions=Rule("non-empty, each in (0, 1)",
                                                   lambda v: bool(v) and all(0.0 < f < 1.0 for f in v)),
                     finished_fraction=between(0.5, 1), min_reference_decay=between(0, 1),
                     min_shift_sd=between(0, 10), alpha_prior_sd_min=between(0, 10), schedule_blocks=at_least(8),
                     min_conformal_scores=at_least(4), max_candidates=at_least(1), min_target_points=at_least(2))


@dataclass(frozen=True)
class ForecastConfig:
    """What the monitor forecasts and how: ``Monitor(forecast=ForecastConfig(...))``, or ``None`` for no
    forecasts. The fields from ``n_bootstrap`` on are the settings of
    :func:`evalcast.forecast.forecast_task`."""

    every: int = 1
    """Forecast at every ``every``-th evaluation (a forecast costs about a second per task)."""
    proxies: tuple[str, ...] = DEFAULT_PROXIES
    """Candidate proxy metrics per task; the forecaster picks one by rolling backtest."""
    chance: Mapping[str, float] = field(default_factory=dict)
    """Per-task floor of accuracy (default 0 for open generation; the mean of 1/K over a group of K-way
    multiple-choice questions unless given here)."""
    ceiling: Mapping[str, float] = field(default_factory=dict)
    """Per-task ceiling of accuracy (default 1)."""
    choice_accuracy: Literal["acc", "acc_norm", "acc_bytes"] = "acc"
    """What is forecast for a group of multiple-choice questions: measured exactly at every save, it is the
    anchor of every checkpoint (lm-eval's ``acc``, or the length-normalised ``acc_norm`` / ``acc_bytes``)."""
    n_bootstrap: int = 200
    """Bootstrap replicates behind the intervals."""
    seed: int = 0
    """Seed of the bootstrap."""
    smooth_window: int = 5
    """Moving-average window over checkpoint proxies. It decides a proxy's direction and gives its value
    at anchors before the fit window; the law itself is fitted to the raw series (see ``fit_proxy``)."""
    skip_fraction: float = 0.1
    """Fraction of the earliest checkpoints left out of the proxy~compute fit."""
    huber_delta: float = 1e-3
    """Huber δ of the proxy~compute fit, on log residuals."""
    law: LawChoice = "auto"
    """"auto": the annealing law when an LR schedule is given, else the power law in compute."""
    annealing_decay: float = 0.999
    """λ of the annealing momentum."""
    accuracy_source: AccuracySource = "both"
    """What the accuracy~proxy sigmoid is fitted on; "both" uses probe points when given."""
    model_error: float = 0.02
    """Accuracy-scale error of the fitted law itself, added in quadrature to each anchor's binomial SE for
    its weight. Without it, anchors near the floor (SE → 0) outweigh the rest and fix the sigmoid's tail,
    whose shape is the part the data do not pin down."""
    probe_weight: float = 0.25
    """Total weight of probe points relative to the total anchor weight (source "both")."""
    links: tuple[str, ...] = ("logit", "probit")
    """Links of the accuracy~proxy sigmoid ("logit", "probit", "cloglog", "loglog"): the forecast averages
    them and the bootstrap pools their replicates, since a few anchors low on the curve do not identify
    the link (``docs/methods.md``)."""
    free_ceiling_above: float = 0.5
    """Free the ceiling u (with the ladder's helper point) once observed accuracy exceeds this · u."""
    default_proxy: str = "nll"
    """Proxy used when there are too few anchors for a backtest (falls back to the simplest present)."""
    max_candidates: int = 8
    """Most proxies backtested (the smoothest trending ones)."""
    min_backtest_anchors: int = 4
    """Fewest anchors for a rolling backtest (fit on ≥ 3, predict ≥ 1)."""
    backtest_origins: int = 3
    """Most rolling origins per candidate, spread evenly from the third anchor to the last but one."""
    curve_points: int = 60
    """Points of the forecast curve between the last checkpoint and the end of the budget."""
    kstep: int = 6
    """Gauss–Newton steps per bootstrap replicate (k-step bootstrap)."""
    gates: GateConfig = field(default_factory=GateConfig)
    """When a forecast is refused."""
    clusters: ClusterConfig = field(default_factory=ClusterConfig)
    """The per-difficulty breakdown."""
    references: ReferenceConfig = field(default_factory=ReferenceConfig)
    """How reference runs are used, when the monitor is given any."""

    def __post_init__(self) -> None:
        check_config(self, every=at_least(1), proxies=non_empty(), chance=each(between(0, 1, high_open=True)),
                     ceiling=each(between(0, 1, low_open=True)), n_bootstrap=at_least(1), seed=at_least(0),
                     smooth_window=at_least(1), skip_fraction=between(0, 1, high_open=True),
                     huber_delta=above(0), annealing_decay=between(0, 1, low_open=True, high_open=True),
                     model_error=at_least(0), probe_weight=at_least(0),
                     links=Rule(f"non-empty, each one of {LINKS}", lambda v: bool(v) and set(v) <= set(LINKS)),
                     free_ceiling_above=between(0, 1, low_open=True), default_proxy=non_empty(),
                     max_candidates=at_least(1), min_backtest_anchors=at_least(2), backtest_origins=at_least(1),
                     curve_points=at_least(2), kstep=at_least(1))
        bad = [g for g in self.chance if self.chance[g] >= self.ceiling.get(g, 1.0)]
        if bad:
            raise ValueError(f"ForecastConfig.chance: the floor of {bad[0]!r} is not below its ceiling "
                             f"({self.chance[bad[0]]} >= {self.ceiling.get(bad[0], 1.0)}); allowed: chance < ceiling")
