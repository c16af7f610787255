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
    max_link_extrapolation: float = 1.0
    """Refuse (``link_extrapolation``) when the end-of-budget proxy lies beyond the proxy range over
    which the accuracy link was observed (the anchors'; with references, all reference anchors') by more
    than this multiple of that range, or when no anchor has left the floor yet (without references).
    There the sigmoid is pure extrapolation: a steep fit saturates and publishes a confident, wrong
    value. ``inf`` turns the gate off."""

    def __post_init__(self) -> None:
        if not self.max_link_extrapolation >= 0:
            raise ValueError(f"GateConfig.max_link_extrapolation must be ≥ 0 (inf: off), got "
                             f"{self.max_link_extrapolation!r}")


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
        if not self.backtest_fractions or not all(0.0 < f < 1.0 for f in self.backtest_fractions):
            raise ValueError(f"ReferenceConfig.backtest_fractions must be non-empty, each in (0, 1), got "
                             f"{self.backtest_fractions!r}")
        for name, lo, hi in (("finished_fraction", 0.5, 1.0), ("min_reference_decay", 0.0, 1.0),
                             ("min_shift_sd", 0.0, 10.0), ("alpha_prior_sd_min", 0.0, 10.0)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f"ReferenceConfig.{name} must lie in [{lo:g}, {hi:g}], got {v!r}")
        for name, lo in (("schedule_blocks", 8), ("min_conformal_scores", 4), ("max_candidates", 1),
                         ("min_target_points", 2)):
            if int(getattr(self, name)) < lo:
                raise ValueError(f"ReferenceConfig.{name} must be an integer ≥ {lo}, got {getattr(self, name)!r}")


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
    references: ReferenceConfig = field(default_factory=ReferenceConfig)
