"""Configuration of the forecasters (frozen dataclasses; defaults follow METHODS §8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LawChoice = Literal["auto", "power", "annealing"]
AccuracySource = Literal["anchors", "probe", "both"]
ClusterLaw = Literal["twostep", "cod"]


@dataclass(frozen=True)
class GateConfig:
    """Quality gates: a forecast failing any of them is refused with a reason (METHODS §8)."""

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
    replicates near the ceiling, confidently wrong). On simulated runs this ratio was 0.03–0.10 wherever
    the forecast was good (constant LR, cosine from 50%, WSD after its cool-down started) and 0.55–1.09
    from 25% of a cosine run, where the annealing term is not identified (final proxy off by 0.2 of
    its range)."""
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


@dataclass(frozen=True)
class ClusterConfig:
    """Per-difficulty-cluster forecasts (COD-style, METHODS §5)."""

    enabled: bool = True
    law: ClusterLaw = "twostep"
    """"twostep": each cluster's own sigmoid on the task proxy curve (follows the LR schedule);
    "cod": ``g + (1 − g)·exp(−a·C^(−b) − c)`` against compute."""
    bandwidth_quantile: float = 0.2
    """Quantile passed to ``sklearn.cluster.estimate_bandwidth``."""
    min_cluster_size: int = 5
    """Clusters smaller than ``max(min_cluster_size, min_cluster_frac·Q)`` are outliers."""
    min_cluster_frac: float = 0.05
    max_anchors_for_bins: int = 4
    """With this many anchors or fewer, use quantile bins of the first informative anchor instead."""
    n_bins: int = 3
    non_emergent_margin: float = 0.02
    """A cluster whose accuracy never exceeds ``g + margin`` is non-emergent (last value, flagged)."""
    probe_columns: int = 10
    """Probe checkpoints (evenly spaced) added to each question's anchor trajectory for clustering."""
    n_seeds: int = 10
    """MeanShift seeds: questions evenly spaced in mean pass rate (seeding every question costs ~20×)."""


@dataclass(frozen=True)
class ForecastConfig:
    """All settings of :func:`evalcast.forecast.forecast_task`."""

    n_bootstrap: int = 200
    seed: int = 0
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
    whose shape is the part the data do not pin down (80% coverage 0.82 → 0.90 and MAE 0.021 → 0.018 on
    the coverage test's runs)."""
    probe_weight: float = 0.25
    """Total weight of probe points relative to the total anchor weight (source "both")."""
    links: tuple[str, ...] = ("logit", "probit")
    """Links of the accuracy~proxy sigmoid ("logit", "probit", "cloglog", "loglog"): the forecast averages
    them and the bootstrap pools their replicates, since a few anchors low on the curve do not identify
    the link. Simulated runs (constant LR, 10–20 seeds per layout): the logistic alone over-forecast by
    0.03 with 80% coverage 0.45 when 5 anchors sat at 10–50% of the run; logit+probit erred 0.018 with
    coverage 0.90 there and 0.90–1.00 with 9 anchors spread over the run, but only 0.2–0.6 when 5 of 9
    anchors sat in the first 10% (the tail then fixes the shape); all four links gave 0.8 there and
    1.0 (too wide) in the sparse layouts."""
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
    kstep: int = 6
    """Gauss–Newton steps per bootstrap replicate (k-step bootstrap)."""
    gates: GateConfig = field(default_factory=GateConfig)
    clusters: ClusterConfig = field(default_factory=ClusterConfig)
