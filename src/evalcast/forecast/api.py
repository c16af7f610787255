"""Entry points: :func:`forecast_task` and :func:`forecast_run`. They never raise.

Choice of law: with an LR schedule the annealing law is used ("auto"), without one the power law in
compute. Under a constant LR the annealing law reduces to a power law in steps (S2 = 0), so nothing is
lost by always using it; under a decaying LR the power law in compute cannot see the coming decay and is
biased. Early in a decay the annealing term is not identified and a backtest inside the window cannot
tell the laws apart either, so no per-run choice is made: the bootstrap (which refits C) carries the
uncertainty, and the proxy-interval gate refuses such forecasts.

A schedule whose decay lies wholly after the checkpoints (WSD before its cool-down) is refused unless
``GateConfig.refuse_unobserved_annealing`` is off.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from evalcast.errors import ErrorPolicy
from evalcast.forecast.accuracy import AccuracyPoints
from evalcast.forecast.baselines import compute_power, compute_sigmoid, last_value, loss_twostep
from evalcast.forecast.bootstrap import anchor_replicates, question_counts
from evalcast.forecast.calibration import ReferenceSet
from evalcast.forecast.clusters import cluster_breakdown
from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.gates import Reason, Refusal
from evalcast.forecast.inputs import TaskInputs
from evalcast.forecast.prepare import AnchorTable, Axis, as_series, build_anchors, build_axis, phase_flags, probe_matrix
from evalcast.forecast.references import ReferenceRun
from evalcast.forecast.refforecast import forecast_with_references, refused_with_baselines
from evalcast.forecast.results import FitData, Forecast, ProxyChoice, TaskForecast, refused
from evalcast.forecast.selection import rank_proxies
from evalcast.forecast.twostep import ProxyFit, twostep_forecast

#: Refusals specific to one proxy's fit; the next-ranked proxy is tried after them.
_PROXY_FAILURES = {r.value for r in (Reason.TOO_FEW_POINTS, Reason.COMPUTE_RANGE, Reason.EXPONENT_AT_BOUND,
                                     Reason.POOR_FIT, Reason.FIT_FAILED, Reason.NON_MONOTONE, Reason.SLOPE_AT_BOUND)}


def forecast_task(inputs: TaskInputs, config: ForecastConfig | None = None,
                  references: ReferenceSet | Sequence[ReferenceRun] | None = None,
                  n_params: float | None = None, policy: ErrorPolicy = ErrorPolicy()) -> TaskForecast:
    """Forecast one task's accuracy at the end of the training budget.

    Returns evalcast's two-step forecast, each baseline, the difficulty-cluster breakdown, the proxy
    chosen and the data fitted. Any failed gate, bad input or internal error becomes a refusal with a
    reason code and a sentence; nothing is raised into the caller's training loop. An internal error (a
    bug) is also logged with its traceback, and re-raised when ``policy`` is strict.

    ``references``: the same task in other runs, as :class:`ReferenceRun` s or (prepared once, which is
    much cheaper per call) a :class:`ReferenceSet` from :func:`prepare_references`; the forecast then
    comes from them (see :mod:`evalcast.forecast.refforecast`). ``n_params``: this run's non-embedding
    parameter count, if known (the pilot-ratio baseline picks the reference nearest in size).
    """
    cfg = config or ForecastConfig()
    name = str(getattr(inputs, "name", "task"))
    base = None
    # a bug is logged with its traceback and refused as internal_error (re-raised under strict)
    with policy.guard(f"forecasting {name!r} (refused as internal_error)") as failure:
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                base = _forecast_task(name, inputs, cfg, policy)
                if references is None:
                    return base
                return forecast_with_references(base, inputs, cfg, references, n_params)
        except Refusal as r:
            if base is not None:
                return refused_with_baselines(base, r.reason, r.message)
            return _refused_task(name, inputs, r.reason, r.message)
    return _refused_task(name, inputs, Reason.INTERNAL_ERROR, failure.message)


def forecast_run(tasks: Sequence[TaskInputs], config: ForecastConfig | None = None,
                 references: Mapping[str, ReferenceSet | Sequence[ReferenceRun]] | None = None,
                 n_params: float | None = None, policy: ErrorPolicy = ErrorPolicy()) -> dict[str, TaskForecast]:
    """:func:`forecast_task` for several tasks, keyed by task name (``references`` keyed by task name too)."""
    out = {}
    for i, t in enumerate(tasks):
        name = str(getattr(t, "name", i))
        out[name] = forecast_task(t, config, (references or {}).get(name), n_params, policy)
    return out


def _refused_task(name: str, inputs: object, reason: Reason, message: str) -> TaskForecast:
    try:
        ck = inputs.checkpoints  # type: ignore[attr-defined]
        x_end, x_last = float(ck.x_end), float(np.asarray(ck.x, dtype=float).reshape(-1)[-1])
    except Exception:
        x_end = x_last = float("nan")
    return TaskForecast(name, "refused", reason.value, message, x_end, x_last,
                        refused("evalcast", reason.value, message))


def _bounds(inputs: TaskInputs) -> tuple[float, float]:
    try:
        g, u = float(inputs.chance), float(inputs.ceiling)
    except (TypeError, ValueError):
        raise Refusal(Reason.INVALID_INPUT, "chance and ceiling must be numbers") from None
    if not (np.isfinite(g) and np.isfinite(u) and 0.0 <= g < u <= 1.0):
        raise Refusal(Reason.INVALID_INPUT, f"need 0 ≤ chance < ceiling ≤ 1, got chance={g}, ceiling={u}")
    return g, u


def accuracy_points(anchors: AnchorTable, probe_acc: np.ndarray | None, probe_n: int, cfg: ForecastConfig,
                    counts: np.ndarray | None, rng: np.random.Generator) -> AccuracyPoints:
    """Anchors (weight 1/(SE² + model_error²), replicates by question resampling) plus probe points per the
    configured source."""
    reps = anchor_replicates(anchors, counts, cfg.n_bootstrap, rng)
    use_anchors = cfg.accuracy_source in ("anchors", "both")
    has_probe = probe_acc is not None and bool(np.any(np.isfinite(probe_acc)))
    use_probe = cfg.accuracy_source in ("probe", "both") and has_probe
    if cfg.accuracy_source == "probe" and not has_probe:
        raise Refusal(Reason.TOO_FEW_ANCHORS, "accuracy_source='probe' but no probe predictions were given")
    a_idx = anchors.index if use_anchors else anchors.index[:0]
    a_w = 1.0 / (anchors.se[: a_idx.size] ** 2 + cfg.model_error**2)
    parts = [(a_idx, anchors.acc[: a_idx.size], anchors.se[: a_idx.size], a_w, reps[:, : a_idx.size])]
    if use_probe:
        assert probe_acc is not None
        p_idx = np.flatnonzero(np.isfinite(probe_acc) & (probe_acc >= 0) & (probe_acc <= 1))
        p_acc = probe_acc[p_idx]
        p_se = np.sqrt(np.clip(p_acc * (1 - p_acc), 1e-4, None) / probe_n)
        p_w = (np.full(p_idx.size, cfg.probe_weight * a_w.sum() / max(p_idx.size, 1)) if a_idx.size
               else 1.0 / p_se**2)
        parts.append((p_idx, p_acc, p_se, p_w, np.broadcast_to(p_acc, (cfg.n_bootstrap, p_idx.size))))
    idx, acc, se, w, rep = (np.concatenate(v, axis=-1) for v in zip(*parts))
    source = "+".join(s for s, on in (("anchors", a_idx.size > 0), ("probe", use_probe)) if on) or "none"
    return AccuracyPoints(idx.astype(int), acc, se, w, rep, int(a_idx.size), source)


def _proxies(inputs: TaskInputs, n: int) -> tuple[dict[str, np.ndarray], list[str]]:
    out, notes = {}, []
    for key, values in dict(inputs.proxies or {}).items():
        s = as_series(values, n)
        if s is None:
            notes.append(f"dropped proxy '{key}': it must hold one number per checkpoint ({n})")
        else:
            out[str(key)] = s
    return out, notes


def _forecast_task(name: str, inputs: TaskInputs, cfg: ForecastConfig, policy: ErrorPolicy) -> TaskForecast:
    axis = build_axis(inputs, cfg)
    g, u = _bounds(inputs)
    n = axis.x.size
    anchors, notes = build_anchors(inputs.anchors, n)
    proxies, proxy_notes = _proxies(inputs, n)
    notes += proxy_notes
    probe_ids, probe = probe_matrix(inputs, n)
    probe_acc = as_series(inputs.probe_accuracy, n) if inputs.probe_accuracy is not None else None
    if probe_acc is None and probe is not None:
        probe_acc = np.nanmean(probe, axis=0)
    probe_n = len(probe_ids) or int(np.max(anchors.n, initial=100))
    counts = (question_counts(len(anchors.qids), cfg.n_bootstrap, np.random.default_rng([cfg.seed, 1]))
              if anchors.per_question is not None else None)
    pts = accuracy_points(anchors, probe_acc, probe_n, cfg, counts, np.random.default_rng([cfg.seed, 2]))
    anchor_pts = _anchors_only(pts)
    choice, forecast, pf, proxy_reps = _forecast_with_best_proxy(proxies, axis, pts, g, u, cfg)
    forecast = _with_flags(forecast, phase_flags(axis) + [f"note:{m}" for m in notes])
    losses = dict(inputs.losses or {})
    baselines = {
        "compute_sigmoid": _guard(policy, "compute_sigmoid", lambda: compute_sigmoid(axis, anchor_pts, g, u, cfg)),
        "compute_power": _guard(policy, "compute_power", lambda: compute_power(axis, anchor_pts, g, u, cfg)),
        "loss_twostep": _guard(policy, "loss_twostep", lambda: loss_twostep(axis, losses, pts, g, u, cfg,
                                                                    np.random.default_rng([cfg.seed, 4]))),
        "last_value": _guard(policy, "last_value", lambda: last_value(axis, anchor_pts)),
    }
    clusters = None
    if cfg.clusters.enabled:  # a side result must not take the main forecast down with it
        with policy.guard(f"the difficulty clusters of {name!r}") as failure:
            clusters = cluster_breakdown(axis, anchors, pf, proxy_reps, probe_ids, probe, counts, g, u, cfg,
                                         np.random.default_rng([cfg.seed, 5]))
        if failure:
            forecast = _with_flags(forecast, [f"clusters_failed:{type(failure.error).__name__}"])
    return TaskForecast(name, forecast.status, forecast.reason, forecast.message, axis.x_end, float(axis.x[-1]),
                        forecast, choice, baselines, clusters, _fit_data(axis, pf, pts))


def _forecast_with_best_proxy(proxies: dict[str, np.ndarray], axis: Axis, pts: AccuracyPoints, g: float, u: float,
                              cfg: ForecastConfig) -> tuple[ProxyChoice | None, Forecast, ProxyFit | None,
                                                            tuple[np.ndarray, np.ndarray] | None]:
    """Forecast with the best-ranked proxy whose fit passes; if none does, the best one's refusal."""
    attempts = []
    for candidate in rank_proxies(proxies, axis, pts, g, u, cfg):
        result = twostep_forecast("evalcast", candidate.name, proxies[candidate.name], axis, pts, g, u, cfg,
                                  np.random.default_rng([cfg.seed, 3]))
        attempts.append((candidate, result))
        if result[0].reason not in _PROXY_FAILURES:
            break
    if not attempts:
        return None, _no_proxy(proxies, cfg), None, None
    passed = attempts[-1][1][0].reason not in _PROXY_FAILURES
    choice, (forecast, pf, reps) = attempts[-1] if passed else attempts[0]
    if passed and len(attempts) > 1:
        skipped = ", ".join(f"{c.name} ({r[0].reason})" for c, r in attempts[:-1])
        choice = ProxyChoice(choice.name, choice.method, choice.scores,
                             f"{choice.message}; skipped, failing their fit: {skipped}")
    return choice, forecast, pf, reps


def _guard(policy: ErrorPolicy, method: str, compute: Callable[[], Forecast]) -> Forecast:
    """A baseline, or its failure as a refusal (it must not take evalcast's own forecast down with it)."""
    with policy.guard(f"the {method} baseline (refused as internal_error)") as failure:
        try:
            return compute()
        except Refusal as r:
            return refused(method, r.reason.value, r.message)
    return refused(method, Reason.INTERNAL_ERROR.value, failure.message)


def _no_proxy(proxies: dict[str, np.ndarray], cfg: ForecastConfig) -> Forecast:
    most = max((int(np.sum(np.isfinite(v))) for v in proxies.values()), default=0)
    if most < cfg.gates.min_points:
        return refused("evalcast", Reason.TOO_FEW_POINTS.value, f"the longest proxy series has {most} finite values; "
                       f"at least {cfg.gates.min_points} are needed")
    return refused("evalcast", Reason.NO_PROXY.value, "no proxy series trends clearly over checkpoints "
                   "(|Spearman| < 0.5 against compute): nothing to extrapolate")


def _anchors_only(pts: AccuracyPoints) -> AccuracyPoints:
    k = pts.n_anchors
    return AccuracyPoints(pts.index[:k], pts.acc[:k], pts.se[:k], pts.weight[:k], pts.replicates[:, :k], k, "anchors")


def _with_flags(fc: Forecast, extra: list[str]) -> Forecast:
    return Forecast(fc.method, fc.status, fc.reason, fc.message, fc.final, fc.interval80, fc.interval95, fc.curve,
                    fc.params, fc.flags + tuple(extra))


def _fit_data(axis: Axis, pf: ProxyFit | None, pts: AccuracyPoints) -> FitData | None:
    if pf is None:
        return None
    k = pts.n_anchors
    return FitData(
        x=tuple(map(float, axis.x)), proxy=tuple(map(float, pf.raw)), y=tuple(map(float, pf.y)),
        window=(int(pf.window[0]), int(pf.window[-1]) + 1), sign=pf.sign, offset=pf.offset, law=axis.law,
        accuracy_source=pts.source,
        anchor_index=tuple(int(i) for i in pts.index[:k]), anchor_accuracy=tuple(map(float, pts.acc[:k])),
        anchor_se=tuple(map(float, pts.se[:k])),
    )

