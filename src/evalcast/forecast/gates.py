"""Quality gates: no forecast is better than a garbage forecast (``docs/methods.md`` §6).

Each check returns None when it passes, else a :class:`Refusal` with a machine-readable code from
:class:`Reason` and a sentence saying what was wrong and why it blocks the forecast.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from evalcast.forecast.config import GateConfig


class Reason(str, Enum):
    """Refusal codes.

    ``link_extrapolation``: the end-of-budget proxy lies too far beyond the proxy range where accuracy
    was observed (or no anchor has left the floor yet). ``reference_mismatch``: a reference run is of
    another task or measures compute on another axis. ``too_few_references``: a baseline needs more
    finished reference runs than were given.
    """

    INVALID_INPUT = "invalid_input"
    NO_PROXY = "no_proxy"
    NO_LOSS = "no_loss"
    TOO_FEW_POINTS = "too_few_points"
    COMPUTE_RANGE = "compute_range"
    TOO_FEW_ANCHORS = "too_few_anchors"
    ANCHOR_RANGE = "anchor_range"
    EXPONENT_AT_BOUND = "exponent_at_bound"
    SLOPE_AT_BOUND = "slope_at_bound"
    POOR_FIT = "poor_fit"
    INTERVAL_TOO_WIDE = "interval_too_wide"
    NON_MONOTONE = "non_monotone"
    FIT_FAILED = "fit_failed"
    ANNEALING_UNOBSERVED = "annealing_unobserved"
    LINK_EXTRAPOLATION = "link_extrapolation"
    REFERENCE_MISMATCH = "reference_mismatch"
    TOO_FEW_REFERENCES = "too_few_references"
    INTERNAL_ERROR = "internal_error"


class Refusal(Exception):
    """A failed gate; raised inside the pipeline and turned into a refused forecast at its edge."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


def check_points(x: np.ndarray, cfg: GateConfig) -> Refusal | None:
    """Enough proxy points, spanning enough compute."""
    if len(x) < cfg.min_points:
        return Refusal(Reason.TOO_FEW_POINTS, f"only {len(x)} usable proxy points in the fit window; "
                       f"at least {cfg.min_points} are needed to fit a 3-4 parameter law")
    ratio = float(x[-1] / x[0]) if x[0] > 0 else float("inf")
    if ratio < cfg.min_compute_range:
        return Refusal(Reason.COMPUTE_RANGE, f"the fit window spans only {ratio:.2f}x compute; at least "
                       f"{cfg.min_compute_range:g}x is needed before an exponent can be told from noise")
    return None


def check_anchors(acc: np.ndarray, se: np.ndarray, cfg: GateConfig, what: str = "anchors") -> Refusal | None:
    """Enough accuracy points, spanning more than their noise."""
    if len(acc) < cfg.min_anchors:
        return Refusal(Reason.TOO_FEW_ANCHORS, f"only {len(acc)} {what}; at least {cfg.min_anchors} are "
                       "needed to fit accuracy against the proxy")
    spread = float(np.max(acc) - np.min(acc))
    noise = float(np.median(se))
    if spread < cfg.min_anchor_range_se * noise:
        return Refusal(Reason.ANCHOR_RANGE, f"{what} span {spread:.3f} accuracy, less than "
                       f"{cfg.min_anchor_range_se:g} standard errors ({noise:.3f} each): the accuracy trend "
                       "cannot be told from sampling noise")
    return None


def check_r2(r2: float, cfg: GateConfig, what: str = "proxy") -> Refusal | None:
    """In-window goodness of fit."""
    if not np.isfinite(r2) or r2 < cfg.min_r2:
        return Refusal(Reason.POOR_FIT, f"the {what}~compute law explains R²={r2:.3f} of the in-window "
                       f"variation (< {cfg.min_r2:g}): the series is flat, too noisy, or not a power law")
    return None


def check_interval(lo80: float, hi80: float, g: float, u: float, cfg: GateConfig) -> Refusal | None:
    """The 80% interval must say something."""
    width = hi80 - lo80
    limit = cfg.max_interval80_frac * (u - g)
    if not np.isfinite(width) or width > limit:
        return Refusal(Reason.INTERVAL_TOO_WIDE, f"the 80% interval [{lo80:.3f}, {hi80:.3f}] is wider than "
                       f"{cfg.max_interval80_frac:g}·(u − g) = {limit:.3f}: the data do not pin the forecast down")
    return None


def check_proxy_interval(lo80: float, hi80: float, window_range: float, cfg: GateConfig) -> Refusal | None:
    """The proxy's own forecast at the budget's end must be pinned down relative to what was observed."""
    ratio = (hi80 - lo80) / window_range if window_range > 0 else float("inf")
    if not np.isfinite(ratio) or ratio > cfg.max_proxy_interval_frac:
        return Refusal(Reason.INTERVAL_TOO_WIDE, f"the 80% interval of the proxy at the end of the budget spans "
                       f"{ratio:.2f} of its observed range (> {cfg.max_proxy_interval_frac:g}): the extrapolation "
                       "is not identified (e.g. the LR-annealing term early in a decay)")
    return None


def check_monotone(curve: np.ndarray, cfg: GateConfig) -> Refusal | None:
    """The forecast must not reverse direction along compute."""
    d = np.diff(curve)
    if d.size and float(np.max(d)) > cfg.monotone_tol and float(np.min(d)) < -cfg.monotone_tol:
        return Refusal(Reason.NON_MONOTONE, "the forecast rises and falls along compute; a law that "
                       "reverses is not a trustworthy extrapolation (LR re-warmup or a misfit)")
    return None


def check_bootstrap(ok_fraction: float, cfg: GateConfig) -> Refusal | None:
    """Most bootstrap replicates must refit."""
    if ok_fraction < cfg.min_bootstrap_success:
        return Refusal(Reason.FIT_FAILED, f"only {ok_fraction:.0%} of bootstrap refits converged "
                       f"(< {cfg.min_bootstrap_success:.0%}): the fit is unstable under resampling")
    return None


def check_link_extrapolation(y_end: float, y_lo: float, y_hi: float, cfg: GateConfig,
                             where: str = "the anchors") -> Refusal | None:
    """The end-of-budget proxy ``y_end`` (loss-like, falling) must stay within ``max_link_extrapolation``
    of the observed range ``[y_lo, y_hi]`` of the accuracy link."""
    span = y_hi - y_lo
    beyond = max(0.0, y_lo - y_end, y_end - y_hi)
    ratio = beyond / span if span > 0 else (0.0 if beyond == 0 else float("inf"))
    if not np.isfinite(y_end) or ratio > cfg.max_link_extrapolation:
        return Refusal(Reason.LINK_EXTRAPOLATION, f"the proxy at the end of the budget ({y_end:.4g}, loss-like) lies "
                       f"{ratio:.2f} of the observed range [{y_lo:.4g}, {y_hi:.4g}] of {where} beyond it (> "
                       f"{cfg.max_link_extrapolation:g}): accuracy there would be extrapolated from the sigmoid's "
                       "shape alone")
    return None


def extrapolation_ratio(y_end: float, y_anchor: np.ndarray, acc: np.ndarray, se: np.ndarray,
                        g: float) -> tuple[float, int, float, float]:
    """How far ``y_end`` lies beyond the proxy range of the anchors above the floor (``acc > g + 2·SE``), in
    units of that range: ``(ratio, anchors above the floor, range low, range high)`` (ratio inf without any)."""
    off = acc > g + 2.0 * se
    if not np.any(off):
        return float("inf"), 0, float("nan"), float("nan")
    lo, hi = float(np.min(y_anchor[off])), float(np.max(y_anchor[off]))
    beyond = max(0.0, lo - y_end, y_end - hi)
    ratio = beyond / (hi - lo) if hi > lo else (0.0 if beyond == 0 else float("inf"))
    return (ratio if np.isfinite(y_end) else float("inf")), int(off.sum()), lo, hi


def check_anchor_extrapolation(y_end: float, y_anchor: np.ndarray, acc: np.ndarray, se: np.ndarray, g: float,
                               cfg: GateConfig) -> Refusal | None:
    """Without references: the link is observed only between the anchors above the floor (``acc > g + 2·SE``);
    refuse when none is, or when ``y_end`` lies too far beyond their proxy range (see
    :func:`check_link_extrapolation`). Skipped with fewer than ``min_anchors`` anchors (that has its own
    refusal)."""
    if acc.size < cfg.min_anchors or not np.isfinite(cfg.max_link_extrapolation):
        return None
    _, n_off, lo, hi = extrapolation_ratio(y_end, y_anchor, acc, se, g)
    if n_off == 0:
        return Refusal(Reason.LINK_EXTRAPOLATION, f"none of the {acc.size} anchors has left the floor yet (all within "
                       "2 standard errors of chance): where accuracy starts to rise with the proxy is unobserved, "
                       "and without reference runs it cannot be forecast")
    return check_link_extrapolation(y_end, lo, hi, cfg, f"the {n_off} anchor(s) above the floor")
