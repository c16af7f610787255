"""Preparing reference runs once: proxy choice and conformal correction, both by leaving one run out.

Inside one run every proxy tracks accuracy, so the proxy is chosen by how well it forecasts *other runs*:
each finished reference is cut at each of ``backtest_fractions`` and forecast from the remaining
references; the candidate with the least mean absolute error of the final value wins (ties within
``max(0.005, 10%)`` go to the simpler proxy; a case a candidate cannot forecast scores the error of the
others' mean final value). For the chosen proxy the same leave-one-run-out forecasts, with intervals, give
the conformal scores: ``s = max(lo − y, y − hi)`` per case, and the interval at fraction f is widened by
the ``⌈(n + 1)·level⌉``-th smallest score at the backtest fraction nearest to f (split conformal; the target
run is never among them). :func:`coverage_interval` gives the Clopper–Pearson interval of an empirical
coverage.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta as beta_dist

from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.crossrun import Correction, forecast_core, interval_forecast
from evalcast.forecast.fit import moving_average
from evalcast.forecast.gates import Refusal
from evalcast.forecast.refdata import ProxyModel, RunData, proxy_model, run_data
from evalcast.forecast.references import ReferenceRun, proxy_scale, reference_problems, truncate
from evalcast.forecast.results import ProxyChoice
from evalcast.forecast.selection import complexity

_BACKTEST_DRAWS = 64


@dataclass(frozen=True)
class ConformalTable:
    """Leave-one-run-out interval misses per backtest fraction (80% and 95%)."""

    fractions: tuple[float, ...]
    scores80: tuple[tuple[float, ...], ...]
    scores95: tuple[tuple[float, ...], ...]

    def correction(self, fraction: float, min_scores: int) -> Correction:
        i = int(np.argmin(np.abs(np.array(self.fractions) - fraction)))
        s80, s95 = np.array(self.scores80[i]), np.array(self.scores95[i])
        q80 = conformal_quantile(s80, 0.8) if s80.size >= min_scores else float("nan")
        return Correction(q80, conformal_quantile(s95, 0.95), int(s80.size), self.fractions[i])


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ``⌈(n + 1)·level⌉``-th smallest score (NaN when that exceeds n)."""
    k = int(np.ceil((scores.size + 1) * level))
    return float(np.sort(scores)[k - 1]) if 1 <= k <= scores.size else float("nan")


def coverage_interval(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson interval of a coverage ``hits / n`` (NaN, NaN when n = 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    a = 1.0 - level
    lo = float(beta_dist.ppf(a / 2, hits, n - hits + 1)) if hits > 0 else 0.0
    hi = float(beta_dist.ppf(1 - a / 2, hits + 1, n - hits)) if hits < n else 1.0
    return lo, hi


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """Reference runs of one task, prepared: proxy models in order of preference and the conformal table."""

    task: str
    references: tuple[ReferenceRun, ...]
    runs: tuple[RunData, ...]
    models: tuple[ProxyModel, ...]
    choice: ProxyChoice | None
    conformal: ConformalTable | None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def prepare_references(references: Sequence[ReferenceRun], config: ForecastConfig | None = None) -> ReferenceSet:
    """Validate and fit the references of one task (seconds to a minute; do it once per task).

    Never raises: what makes the set unusable is listed in ``problems`` (a forecast with it refuses with
    ``reference_mismatch``)."""
    cfg = config or ForecastConfig()
    try:
        refs = tuple(references or ())
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _prepare(refs, cfg)
    except Exception as exc:  # an internal error must not reach the caller (a training loop)
        return ReferenceSet("", (), (), (), None, None, (f"internal error preparing the references: "
                                                         f"{type(exc).__name__}: {exc}",))


def _prepare(refs: tuple[ReferenceRun, ...], cfg: ForecastConfig) -> ReferenceSet:
    if not refs:
        return ReferenceSet("", (), (), (), None, None, ("no reference runs were given",))
    first = getattr(refs[0], "task", None)
    task = str(getattr(first, "name", ""))
    problems = reference_problems(first, refs) if first is not None else ["reference 0 has no task"]
    runs, notes = [], []
    for ref in refs:
        try:
            runs.append(run_data(ref.name, ref.task, ref.n_params, cfg))
        except Refusal as r:
            problems.append(f"reference '{ref.name}': {r.message}")
        except Exception as exc:  # malformed beyond what validation anticipates
            problems.append(f"reference '{getattr(ref, 'name', '?')}': {type(exc).__name__}: {exc}")
    if problems:
        return ReferenceSet(task, refs, tuple(runs), (), None, None, tuple(problems))
    g, u = float(first.chance), float(first.ceiling)
    models = []
    for name in _candidates(runs, cfg):
        kind = proxy_scale([(r.proxies[name], r.x) for r in runs], cfg.smooth_window)
        model = proxy_model(runs, name, kind, g, u, cfg, with_spread=False) if kind else None
        if model is None:
            notes.append(f"proxy '{name}' has no common scale or link across the references")
        else:
            models.append(model)
    finished = [r for r in runs if r.final is not None]
    if not models:
        return ReferenceSet(task, refs, tuple(runs), (), None, None, (), tuple(notes))
    if len(finished) < 2 or len(runs) < 2:
        order = sorted(models, key=lambda m: (m.proxy != cfg.default_proxy, complexity(m.proxy)))
        choice = ProxyChoice(order[0].proxy, "default", message=f"{len(finished)} finished reference(s): too few to "
                             "backtest proxies across runs; the default or simplest proxy")
        return ReferenceSet(task, refs, tuple(runs), tuple(order), choice, None, (), tuple(notes))
    scores = {m.proxy: _loo_mae(m, runs, g, u, cfg) for m in models}
    models = [proxy_model(runs, m.proxy, m.kind, g, u, cfg, start=m.shared) or m for m in models]
    best = min(scores.values())
    tol = max(0.005, 0.1 * best)
    order = sorted(models, key=lambda m: (scores[m.proxy] > best + tol,
                                          complexity(m.proxy) if scores[m.proxy] <= best + tol else (scores[m.proxy],)))
    choice = ProxyChoice(order[0].proxy, "reference_backtest", scores,
                         f"least leave-one-run-out MAE of the final value over {len(finished)} finished references "
                         f"at fractions {list(cfg.references.backtest_fractions)} (ties within max(0.005, 10%) go "
                         "to the simpler proxy)")
    table = _conformal(order[0], runs, g, u, cfg)
    return ReferenceSet(task, refs, tuple(runs), tuple(order), choice, table, (), tuple(notes))


def _candidates(runs: Sequence[RunData], cfg: ForecastConfig) -> list[str]:
    """Proxies every reference has, the least noisy first (``max_candidates``; the default proxy kept)."""
    common = set.intersection(*(set(r.proxies) for r in runs))
    noise = {}
    for name in common:
        ratios = []
        for r in runs:
            v = r.proxies[name]
            ok = np.isfinite(v)
            if ok.sum() < 4:
                break
            sm = moving_average(v, cfg.smooth_window)[ok]
            ratios.append(float(np.median(np.abs(v[ok] - sm)) / np.ptp(sm)) if np.ptp(sm) > 0 else np.inf)
        else:
            noise[name] = float(np.median(ratios))
    ranked = sorted((n for n in noise if np.isfinite(noise[n])), key=lambda n: (noise[n], complexity(n)))
    top = ranked[: cfg.references.max_candidates]
    if cfg.default_proxy in ranked and cfg.default_proxy not in top:
        top[-1] = cfg.default_proxy
    return top


def _held_out(run: RunData, fraction: float, cfg: ForecastConfig) -> RunData | None:
    try:
        return run_data(run.name, truncate(run.inputs, fraction), run.n_params, cfg)
    except Refusal:
        return None


def _loo_cases(model: ProxyModel, runs: Sequence[RunData], g: float, u: float, cfg: ForecastConfig,
               with_spread: bool) -> Iterator[tuple[RunData, float, ProxyModel | None, RunData | None]]:
    """Yield ``(held-out run, fraction, model without it, cut run)`` for every finished run and fraction."""
    for run in runs:
        if run.final is None:
            continue
        others = [r for r in runs if r is not run]
        loo = proxy_model(others, model.proxy, model.kind, g, u, cfg, with_spread=with_spread, start=model.shared)
        for f in cfg.references.backtest_fractions:
            yield run, f, loo, _held_out(run, f, cfg)


def _loo_mae(model: ProxyModel, runs: Sequence[RunData], g: float, u: float, cfg: ForecastConfig) -> float:
    errors = []
    rng = np.random.default_rng([cfg.seed, 7])
    for run, _f, loo, cut in _loo_cases(model, runs, g, u, cfg, with_spread=False):
        others = [r.final for r in runs if r is not run and r.final is not None]
        fallback = float(np.mean(others)) if others else 0.5 * (g + u)
        pred = fallback
        if loo is not None and cut is not None:
            try:
                core = forecast_core(cut, loo, cfg, _BACKTEST_DRAWS, rng)
                finals = core.curves[np.all(np.isfinite(core.curves), axis=1), -1]
                pred = float(np.median(finals)) if finals.size else fallback
            except Refusal:
                pass
        errors.append(abs(pred - float(run.final)))  # type: ignore[arg-type]
    return float(np.mean(errors)) if errors else float("inf")


def _conformal(model: ProxyModel, runs: Sequence[RunData], g: float, u: float, cfg: ForecastConfig) -> ConformalTable:
    fractions = tuple(cfg.references.backtest_fractions)
    s80: dict[float, list[float]] = {f: [] for f in fractions}
    s95: dict[float, list[float]] = {f: [] for f in fractions}
    rng = np.random.default_rng([cfg.seed, 8])
    for run, f, loo, cut in _loo_cases(model, runs, g, u, cfg, with_spread=True):
        if loo is None or cut is None:
            continue
        try:
            core = forecast_core(cut, loo, cfg, cfg.n_bootstrap, rng)
        except Refusal:
            continue
        fc = interval_forecast(cut, loo, core, None, g, u, cfg, rng)
        if not fc.ok or fc.interval80 is None or fc.interval95 is None:
            continue
        y = float(run.final)  # type: ignore[arg-type]
        s80[f].append(max(fc.interval80[0] - y, y - fc.interval80[1]))
        s95[f].append(max(fc.interval95[0] - y, y - fc.interval95[1]))
    return ConformalTable(fractions, tuple(tuple(s80[f]) for f in fractions), tuple(tuple(s95[f]) for f in fractions))
