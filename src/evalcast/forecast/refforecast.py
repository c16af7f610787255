"""A task's forecast with reference runs, assembled on top of the within-run forecast.

The within-run forecast and its baselines are computed as without references; with references the
published forecast is the cross-run one, and the within-run forecast joins the baselines as
``within_run`` next to ``prior_only`` and ``pilot_ratio``. Where the references cannot serve this run
(no proxy it shares with them, no LR schedule here, or a decaying schedule here while no reference has
decayed far enough to measure a decay) the within-run forecast is published, flagged
``references:fallback:<reason>``. References of another task or compute axis refuse with
``reference_mismatch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from evalcast.forecast.calibration import ReferenceSet, prepare_references
from evalcast.forecast.config import ForecastConfig
from evalcast.forecast.crossrun import CoreDraws, forecast_core, interval_forecast
from evalcast.forecast.gates import Reason, Refusal
from evalcast.forecast.inputs import TaskInputs
from evalcast.forecast.refbaselines import pilot_ratio, prior_only
from evalcast.forecast.refdata import ProxyModel, RunData, run_data
from evalcast.forecast.references import ReferenceRun, reference_problems
from evalcast.forecast.results import FitData, Forecast, ProxyChoice, TaskForecast, refused

_FALLBACK = {Reason.NO_PROXY, Reason.ANNEALING_UNOBSERVED}


def forecast_with_references(base: TaskForecast, inputs: TaskInputs, cfg: ForecastConfig,
                             references: ReferenceSet | Sequence[ReferenceRun], n_params: float | None) -> TaskForecast:
    """The cross-run forecast of ``inputs`` (``base``: its within-run forecast); raises :class:`Refusal`."""
    refset = references if isinstance(references, ReferenceSet) else prepare_references(references, cfg)
    problems = list(refset.problems) + (reference_problems(inputs, refset.references) if refset.references else [])
    if problems:
        raise Refusal(Reason.REFERENCE_MISMATCH, "; ".join(problems))
    target = run_data(inputs.name, inputs, n_params, cfg)
    g, u = float(inputs.chance), float(inputs.ceiling)
    baselines = {**base.baselines, "within_run": base.forecast, "prior_only": prior_only(refset.runs, target.x_end),
                 "pilot_ratio": pilot_ratio(target, refset.runs, g, u, n_params)}
    model = next((m for m in refset.models if np.any(np.isfinite(target.proxies.get(m.proxy, np.nan)))), None)
    if model is None:
        return _fallback(base, baselines, "no_common_proxy")
    rng = np.random.default_rng([cfg.seed, 11])
    try:
        core = forecast_core(target, model, cfg, cfg.n_bootstrap, rng)
    except Refusal as r:
        if r.reason in _FALLBACK:
            return _fallback(base, baselines, r.reason.value)
        raise
    rc = cfg.references
    correction = refset.conformal.correction(target.fraction, rc.min_conformal_scores) if refset.conformal else None
    fc = interval_forecast(target, model, core, correction, g, u, cfg, rng)
    return TaskForecast(inputs.name, fc.status, fc.reason, fc.message, target.x_end, float(target.x[-1]), fc,
                        _choice(refset, model), baselines, base.clusters, _fit_data(target, model, core))


def _fallback(base: TaskForecast, baselines: dict[str, Forecast], why: str) -> TaskForecast:
    fc = base.forecast
    flagged = replace(fc, flags=(*fc.flags, f"references:fallback:{why}"))
    return replace(base, forecast=flagged, baselines=baselines)


def _choice(refset: ReferenceSet, model: ProxyModel) -> ProxyChoice:
    choice = refset.choice or ProxyChoice(model.proxy, "default")
    if choice.name == model.proxy:
        return choice
    return ProxyChoice(model.proxy, choice.method, choice.scores, f"{choice.message}; '{choice.name}' is missing "
                       f"in this run, so the next-ranked '{model.proxy}'")


def _fit_data(target: RunData, model: ProxyModel, core: CoreDraws) -> FitData:
    n = target.x.size
    sign, offset = {"identity": (1.0, 0.0), "one_minus": (-1.0, 1.0)}.get(model.kind, (float("nan"), float("nan")))
    a = target.anchors
    return FitData(x=tuple(map(float, target.x)), proxy=tuple(map(float, target.proxies[model.proxy])),
                   y=tuple(map(float, core.law.point[:n])), window=(int(np.argmax(target.step > target.warmup_end)), n),
                   sign=sign, offset=offset, law=f"multipower:{model.kind}", accuracy_source="anchors",
                   anchor_index=tuple(int(i) for i in a.index), anchor_accuracy=tuple(map(float, a.acc)),
                   anchor_se=tuple(map(float, a.se)))


def refused_with_baselines(base: TaskForecast, reason: Reason, message: str) -> TaskForecast:
    """``base`` with its forecast replaced by a refusal (the baselines kept)."""
    return replace(base, status="refused", reason=reason.value, message=message,
                   forecast=refused("evalcast", reason.value, message))
