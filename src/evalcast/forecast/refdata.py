"""Runs as arrays for the cross-run forecast, and what the references say about one proxy.

:class:`RunData` validates a run's inputs once (the target's, or a reference's). :func:`run_proxy` puts
one proxy of a run on the cross-run scale. :func:`proxy_model` fits, on a set of runs, the shared decay
shape (on the runs whose LR fell far enough), the shared link, the prior on α and the checkpoint noise σ.
The link sees each run's proxy at its anchors after the warm-up smoothed by a law: the joint fit for the
runs in it, the run's own law without a drop term for the others, a moving average where the law fits
poorly (R² below ``min_r2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.fit import moving_average
from evalcast.forecast.inputs import TaskInputs
from evalcast.forecast.link import LinkData, SharedLink, fit_shared_link
from evalcast.forecast.multipower import ScheduleTerms, mpl, schedule_terms
from evalcast.forecast.prepare import AnchorTable, as_series, build_anchors, build_axis
from evalcast.forecast.references import ScaleKind, to_scale
from evalcast.forecast.schedule import step_of_x
from evalcast.forecast.shapefit import LawSeries, SharedShape, fit_shared_shape
from evalcast.forecast.transfer import AlphaPrior, fit_transfer


@dataclass(frozen=True, eq=False)
class RunProxy:
    """One proxy of one run on the cross-run scale."""

    y: np.ndarray
    """Loss-like value per checkpoint (NaN where missing)."""
    fit_idx: np.ndarray
    """Post-warm-up checkpoints with a value."""
    smooth: np.ndarray
    """The run's own law per checkpoint where it has no decay to share (else, and where the law fits
    poorly, the moving average)."""
    series: LawSeries | None
    """The data for the shared shape fit (runs whose LR fell by ``min_reference_decay``), else None."""
    every: ScheduleTerms | None
    """Schedule terms at every checkpoint."""
    sigma: float
    alpha: float


@dataclass(frozen=True, eq=False)
class RunData:
    """A run's validated arrays: checkpoints, schedule, anchors, proxies and, if finished, its final value."""

    name: str
    inputs: TaskInputs
    n_params: float | None
    x: np.ndarray
    step: np.ndarray
    x_end: float
    lr: np.ndarray | None
    anchors: AnchorTable
    proxies: dict[str, np.ndarray]
    final: float | None
    final_n: int
    grid: np.ndarray
    grid_steps: np.ndarray
    cache: dict[tuple[str, str], RunProxy | None] = field(default_factory=dict)
    """Per (proxy, scale) results of :func:`run_proxy`, for the configuration the run was built with."""

    @property
    def warmup_end(self) -> int:
        return int(np.argmax(self.lr)) if self.lr is not None else -1

    @property
    def fraction(self) -> float:
        return float(self.x[-1] / self.x_end)

    @property
    def decayed(self) -> float:
        """Fraction of the peak LR lost by the last checkpoint (0 without a schedule)."""
        if self.lr is None:
            return 0.0
        last = int(np.clip(round(float(self.step[-1])), 0, self.lr.size - 1))
        return float(1.0 - self.lr[last] / np.max(self.lr))


def run_data(name: str, inputs: TaskInputs, n_params: float | None, cfg: ForecastConfig) -> RunData:
    """Validate ``inputs`` (raises :class:`~evalcast.forecast.gates.Refusal` on malformed input)."""
    axis = build_axis(inputs, cfg)
    n = axis.x.size
    anchors, _ = build_anchors(inputs.anchors, n)
    lr = None
    grid_steps = axis.grid.copy()
    if axis.law == "annealing" and inputs.checkpoints.schedule is not None:
        lr = np.asarray(inputs.checkpoints.schedule.lr, dtype=float).reshape(-1)
        grid_steps = _grid_steps(inputs, axis.x, axis.step, axis.grid, axis.x_end, lr.size)
    proxies = {}
    for key, values in dict(inputs.proxies or {}).items():
        s = as_series(values, n)
        if s is not None:
            proxies[str(key)] = s
    final, final_n = None, 0
    if anchors.size and axis.x[anchors.index[-1]] >= cfg.references.finished_fraction * axis.x_end:
        final, final_n = float(anchors.acc[-1]), int(anchors.n[-1])
    return RunData(name, inputs, n_params, axis.x, axis.step, axis.x_end, lr, anchors, proxies, final, final_n,
                   axis.grid, grid_steps)


def _grid_steps(inputs: TaskInputs, x: np.ndarray, step: np.ndarray, grid: np.ndarray, x_end: float,
                n_lr: int) -> np.ndarray:
    sched = inputs.checkpoints.schedule
    xs = None if sched is None or sched.x_of_step is None else as_series(sched.x_of_step, n_lr)
    return step_of_x(grid, x, step, x_end, n_lr - 1, xs)


def run_proxy(run: RunData, proxy: str, kind: ScaleKind, cfg: ForecastConfig) -> RunProxy | None:
    """``proxy`` of ``run`` on the ``kind`` scale (cached per run); None when the run lacks it."""
    key = (proxy, kind)
    if key not in run.cache:
        run.cache[key] = _run_proxy(run, proxy, kind, cfg)
    return run.cache[key]


def _run_proxy(run: RunData, proxy: str, kind: ScaleKind, cfg: ForecastConfig) -> RunProxy | None:
    raw = run.proxies.get(proxy)
    if raw is None:
        return None
    y = to_scale(kind, raw)
    fit_idx = np.flatnonzero(np.isfinite(y) & (run.step > run.warmup_end))
    smooth = moving_average(y, cfg.smooth_window)
    if run.lr is None or fit_idx.size < 4:
        return RunProxy(y, fit_idx, smooth, None, None, float("nan"), float("nan"))
    blocks = cfg.references.schedule_blocks
    terms = schedule_terms(run.lr, run.step[fit_idx], blocks)
    every = schedule_terms(run.lr, run.step, blocks)
    if run.decayed >= cfg.references.min_reference_decay and terms.decays:
        return RunProxy(y, fit_idx, smooth, LawSeries(run.name, y[fit_idx], terms), every, float("nan"), float("nan"))
    tf = fit_transfer(y[fit_idx], terms, every, None, (), 1.0, AlphaPrior(0.5, 100.0), 1.0, 1, np.random.default_rng(0))
    if tf is None:
        return RunProxy(y, fit_idx, smooth, None, every, float("nan"), float("nan"))
    rel = (y[fit_idx] - tf.point[fit_idx]) / y[fit_idx]
    sigma = max(float(1.4826 * np.median(np.abs(rel - np.median(rel)))), 1e-5)
    if _r2(y[fit_idx], tf.point[fit_idx]) >= cfg.gates.min_r2:
        smooth = np.where(run.step > run.warmup_end, tf.point, smooth)
    return RunProxy(y, fit_idx, smooth, None, every, sigma, tf.alpha)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else float("nan")


@dataclass(frozen=True, eq=False)
class ProxyModel:
    """What a set of runs says about one proxy: decay shape, link, prior on α and checkpoint noise."""

    proxy: str
    kind: ScaleKind
    shared: SharedShape | None
    link: SharedLink
    prior: AlphaPrior
    sigma: float
    runs: tuple[str, ...]


def link_data(run: RunData, smooth: np.ndarray) -> LinkData:
    """The run's post-warm-up anchors on the link, with the proxy ``smooth`` per checkpoint."""
    a = run.anchors
    keep = (run.step[a.index] > run.warmup_end) & np.isfinite(smooth[a.index])
    return LinkData(run.name, smooth[a.index][keep], a.acc[keep], a.se[keep], a.n[keep])


def proxy_model(runs: Sequence[RunData], proxy: str, kind: ScaleKind, g: float, u: float, cfg: ForecastConfig,
                *, with_spread: bool = True, start: SharedShape | None = None) -> ProxyModel | None:
    """Fit the shared parts on ``runs`` (``start``: warm start of the shape fit); None when no link fits.

    A run in the shape fit has its proxy smoothed by the joint law (where its R² passes ``min_r2``)."""
    rps = [(r, run_proxy(r, proxy, kind, cfg)) for r in runs]
    rps = [(r, p) for r, p in rps if p is not None]
    if not rps:
        return None
    series = [p.series for _, p in rps if p.series is not None]
    shared = fit_shared_shape(series, with_spread=with_spread, start=start) if series else None
    smooth = {r.name: p.smooth for r, p in rps}
    alphas = {r.name: p.alpha for r, p in rps if np.isfinite(p.alpha)}
    sigmas = [p.sigma for _, p in rps if np.isfinite(p.sigma)]
    if shared is not None:
        by_name = {r.name: (r, p) for r, p in rps}
        for name, params, r2, sig in zip(shared.runs, shared.run_params, shared.r2, shared.sigma):
            run, rp = by_name[name]
            if r2 >= cfg.gates.min_r2 and rp.every is not None:
                smooth[name] = np.where(run.step > run.warmup_end, mpl(*params, shared.shape, rp.every), rp.smooth)
            alphas[name] = float(params[2])
            sigmas.append(float(sig))
    rc = cfg.references
    link = fit_shared_link([link_data(r, smooth[r.name]) for r, _ in rps], g, u, model_error=cfg.model_error,
                           free_ceiling_above=cfg.free_ceiling_above, min_shift_sd=rc.min_shift_sd)
    if link is None:
        return None
    values = np.array(list(alphas.values())) if alphas else np.array([0.5])
    sd = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    prior = AlphaPrior(float(np.mean(values)), max(sd, rc.alpha_prior_sd_min))
    sigma = float(np.median(sigmas)) if sigmas else 0.01
    return ProxyModel(proxy, kind, shared, link, prior, sigma, tuple(r.name for r, _ in rps))
